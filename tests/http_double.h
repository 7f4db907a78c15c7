/* The plumbing of the tests' HTTP servers (a thread of the test process on 127.0.0.1, real
 * sockets) that stand in for an OpenAI-compatible chat-completions endpoint: listening on a free
 * port, reading one request, answering it. What a server answers is the test's own. */
#ifndef MCT_TESTS_HTTP_DOUBLE_H
#define MCT_TESTS_HTTP_DOUBLE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A listening socket on 127.0.0.1 at a port the kernel picks: its fd, the port in *port; -1 on
 * failure. */
static inline int http_double_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The next connection on lfd within 50 ms, or -1 (none yet: the caller checks whether to stop
 * and calls again). */
static inline int http_double_accept(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
        return -1;
    return accept(lfd, NULL, NULL);
}

/* Reads one request (headers, then Content-Length bytes of body) into buf (NUL-terminated),
 * waiting at most 5 s for each part. Returns its length, or -1 (timeout, closed, too big). */
static inline long http_double_read(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    long need = -1;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = 0;
        char *he = strstr(buf, "\r\n\r\n");
        if (he && need < 0) {
            long cl = 0;
            for (char *l = buf; l && l < he; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
                if (!strncasecmp(l, "Content-Length:", 15))
                    cl = atol(l + 15);
            need = (long)(he + 4 - buf) + cl;
        }
        if (need >= 0 && (long)n >= need)
            return (long)n;
    }
    return -1;
}

/* Answers with status (200 says OK, any other Error), JSON body and extra header lines (each
 * ending in \r\n; NULL for none), then closes the sending side. */
static inline void http_double_reply(int fd, int status, const char *hdr, const char *body)
{
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                      status, status == 200 ? "OK" : "Error", strlen(body), hdr ? hdr : "");
    send(fd, head, (size_t)hl, MSG_NOSIGNAL);
    send(fd, body, strlen(body), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
}

#endif

/* Model files (models/README.md): a model's layers, expanded into the workloads to tune; and the
 * plain list of workload keys that `mctune gen --model` also takes. Implemented in
 * tuner/model.c. Model files are parsed with cJSON; errors name the file, the layer index (and
 * name) and the field. */
#ifndef MCT_TUNE_MODEL_H
#define MCT_TUNE_MODEL_H

#include <stddef.h>

#include "codegen/codegen.h"

/* Zero-initialize; the loaders fill it; release with mct_tune_model_free. */
typedef struct mct_tune_model {
    char name[64];          /* the model's "name" ("" for a list of keys) */
    mct_workload *w;        /* every (layer, M) pair, in file order; duplicates removed; owned */
    int n, cap;
} mct_tune_model;

/* Loads the model file FILE into *m (zeroed by the caller): each matmul layer in each weight
 * format its "w" (else the file's "w", else f32) names, in that order, and for f32 in the
 * variants its "b" (else the file's "b", else "packed") names, the packed one first
 * (low-precision formats always take the packed variant: their kernels read prepacked weights). Returns 0, or
 * MCT_EIO for any read failure (a directory and out of memory included: err as
 * mct_tune_model_read), MCT_EINVAL (malformed: err says "FILE: layer I (NAME): field F: what is
 * wrong", or "FILE: not valid JSON (near byte B)") or MCT_ENOMEM (adding a workload), m then
 * empty. err (errlen bytes) may be NULL only with errlen 0. */
int mct_tune_model_load(const char *file, mct_tune_model *m, char *err, size_t errlen);

/* As mct_tune_model_load, on the model file's TEXT already in memory; NAME stands for the
 * file in err. Returns 0, MCT_EINVAL or MCT_ENOMEM, m then empty. */
int mct_tune_model_parse(const char *name, const char *text, mct_tune_model *m, char *err,
                         size_t errlen);

/* Loads FILE into *m (zeroed by the caller): a model file (its first non-blank character is
 * '{'), as mct_tune_model_load; otherwise workload keys, one a line ('#' starts a comment,
 * blank lines are skipped), each as mct_wl_parse takes it. Returns 0, or MCT_EIO, MCT_EINVAL
 * or MCT_ENOMEM, m then empty, with err: "cannot read 'FILE': REASON", "'FILE' is a directory;
 * give a file", the model file's errors, or "FILE:LINE: REASON; lines are workload keys such
 * as '...'". err (errlen bytes) may be NULL only with errlen 0. */
int mct_tune_model_load_any(const char *file, mct_tune_model *m, char *err, size_t errlen);

/* Appends a copy of one workload (unless a byte-equal one is there); name (may be NULL) is
 * copied as the model name when m has none, also on failure. Returns 0 or MCT_ENOMEM (the
 * workloads unchanged). */
int mct_tune_model_add(mct_tune_model *m, const mct_workload *w, const char *name);

/* Which variants of a matmul workload to tune: packed (B may be prepacked: keys without b=),
 * raw (b=raw: B taken as given), or both (packed first). ASIS: as the workload says. */
typedef enum {
    MCT_TUNE_B_ASIS = 0,
    MCT_TUNE_B_PACKED = 1,
    MCT_TUNE_B_RAW = 2,
    MCT_TUNE_B_BOTH = 3,
} mct_tune_bvar;

/* "packed", "raw" or "both" into *out. Returns 0 or MCT_EINVAL (*out unchanged). */
int mct_tune_bvar_parse(const char *s, mct_tune_bvar *out);

/* Replaces each matmul workload of m, in place, by its variants vb (the packed one first),
 * whatever variant it was; bmm workloads (one variant) and the order stay; duplicates are
 * dropped. ASIS changes nothing. Returns 0 or MCT_ENOMEM (m unchanged). */
int mct_tune_model_variants(mct_tune_model *m, mct_tune_bvar vb);

/* A list of weight formats, as model files' "w" and `mctune tune --weights` name them. */
#define MCT_TUNE_MAX_WFMTS 8
typedef struct mct_tune_wfmts {
    int n;
    int fmt[MCT_TUNE_MAX_WFMTS], group[MCT_TUNE_MAX_WFMTS]; /* MCT_RT_WF_*, the q4 group or 0 */
} mct_tune_wfmts;

/* Parses a comma-separated list of formats ("f32,bf16,i8,q4g32"; each as mct_rt_wfmt_parse
 * takes it; repeats dropped) into *out. Returns 0, or MCT_EINVAL with err naming the item
 * (unknown, empty, or more than MCT_TUNE_MAX_WFMTS), *out then unspecified. */
int mct_tune_wfmts_parse(const char *s, mct_tune_wfmts *out, char *err, size_t errlen);

/* Replaces each matmul workload of m, in place, by one workload per format of f (in f's order;
 * a low-precision one in the packed variant, since b=raw takes f32 weights only); bmm
 * workloads and the order stay, duplicates are dropped. Returns 0, MCT_ERANGE (a q4 group that
 * does not divide a layer's K: err names the workload and the group; m unchanged), MCT_EINVAL
 * (f empty) or MCT_ENOMEM (m unchanged). */
int mct_tune_model_weights(mct_tune_model *m, const mct_tune_wfmts *f, char *err,
                           size_t errlen);

/* Frees what m holds and zeroes it; m may be empty; freeing twice is harmless. */
void mct_tune_model_free(mct_tune_model *m);

/* Reads a model file or a Hugging Face config.json whole: *text is malloc'ed and
 * NUL-terminated, owned by the caller (free()). Returns 0, or on failure, with *text NULL:
 * MCT_EIO ("FILE: cannot read: REASON"), MCT_EINVAL ("FILE is a directory; give a model
 * file ...") or MCT_ENOMEM ("FILE: out of memory"). err (errlen bytes) may be NULL only with
 * errlen 0. */
int mct_tune_model_read(const char *file, char **text, char *err, size_t errlen);

#endif

/* Model files (models/README.md): a model's layers, expanded into the workloads to tune.
 * Parsed with cJSON; errors name the file, the layer index (and name) and the field. */
#ifndef MCT_TUNE_MODEL_H
#define MCT_TUNE_MODEL_H

#include <stddef.h>

#include "codegen/codegen.h"

typedef struct mct_tune_model {
    char name[64];
    mct_workload *w;        /* every (layer, M) pair, in file order; duplicates removed */
    int n, cap;
} mct_tune_model;

/* Loads FILE into *m (zeroed by the caller). MCT_EIO (unreadable) or MCT_EINVAL (malformed)
 * with err saying "FILE: layer I (NAME): field F: what is wrong". Free with _free. */
int mct_tune_model_load(const char *file, mct_tune_model *m, char *err, size_t errlen);

/* Appends one workload (unless already there); name is the model name when m has none. */
int mct_tune_model_add(mct_tune_model *m, const mct_workload *w, const char *name);

void mct_tune_model_free(mct_tune_model *m);

#endif

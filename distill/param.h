/* param.h: a named, trainable parameter tensor and its gradient.
 *
 * Layers own their dk_param structs; networks hand optimisers and checkpoints
 * a dk_params list of borrowed pointers. Names are stable paths such as
 * "enc1.conv2.weight": checkpoints store one HDF5 dataset per name. */
#ifndef DK_PARAM_H
#define DK_PARAM_H

#include "distill/tensor.h"

typedef struct dk_param {
    char name[96];
    dk_tensor value;
    dk_tensor grad; /* same shape as value; accumulated by backward passes */
} dk_param;

typedef struct dk_params {
    dk_param **items; /* borrowed; the list owns only this array */
    int count;
    int capacity;
} dk_params;

/* Allocate value and grad (both zeroed) with the given shape and name. */
dk_status dk_param_init(dk_param *p, const char *name, int n, int c, int d, int h, int w,
                        dk_err *err);
void dk_param_release(dk_param *p);

dk_status dk_params_push(dk_params *list, dk_param *p, dk_err *err);
void dk_params_release(dk_params *list);
void dk_params_zero_grad(const dk_params *list);
/* Total number of scalar values over all parameters. */
size_t dk_params_numel(const dk_params *list);
/* The parameter with this name, or NULL. */
dk_param *dk_params_find(const dk_params *list, const char *name);

#endif

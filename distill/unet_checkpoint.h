/* unet_checkpoint.h: a U-Net straight from a checkpoint file: the architecture it
 * records, built and loaded, for inference (`dualkd eval`) and anything else that
 * runs a saved network (a teacher or a student) without training it. */
#ifndef DK_UNET_CHECKPOINT_H
#define DK_UNET_CHECKPOINT_H

#include "distill/unet.h"

/* Build the network path's architecture describes and load its parameters (no
 * optimiser state). When arch_json is non-NULL it receives the architecture text
 * (caller frees with free()). Caller frees the network with dk_unet_free; NULL on
 * failure, with the message naming path. */
dk_unet *dk_unet_load_checkpoint(const char *path, char **arch_json, dk_err *err);

/* The product of the pooling factors along each axis (z y x): spatial dims a
 * network is planned for must be multiples of these. */
void dk_unet_pool_product(const dk_unet_config *c, int out[3]);

#endif

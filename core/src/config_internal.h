/* Internal: option-declaration checks shared by config.c and the plugin loader. */
#ifndef BATCHLAB_CONFIG_INTERNAL_H
#define BATCHLAB_CONFIG_INTERNAL_H

#include "batchlab/config.h"

/* Checks a plugin's option table: names non-empty and unique, declarable types, defaults that
 * parse to their type. BL_EPLUGIN with a message prefixed by `owner` otherwise. */
int bl__option_decl_check(bl_ctx *ctx, const bl_option *decl, const char *owner);

#endif

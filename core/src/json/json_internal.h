/* Internal to libbatchlab: what the JSON code shares with the results store. */
#ifndef BATCHLAB_JSON_INTERNAL_H
#define BATCHLAB_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit FNV-1a hash of `n` bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3);
 * the configuration hash of the results store is this over the canonical JSON (bl_json_hash). */
uint64_t bl__fnv1a64(const void *data, size_t n);

#endif

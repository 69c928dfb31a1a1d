#include "batchlab/version.h"

#include "build_config.h"

const char *bl_version(void)
{
    return BATCHLAB_VERSION_STRING;
}

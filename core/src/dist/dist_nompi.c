/* The MPI entry of the distributed layer when batchlab is built without MPI (BATCHLAB_MPI=OFF,
 * or AUTO without it): dist_mpi.c's stand-in (dist/dist_backend.h). A process started by an
 * MPI launcher with several ranks is refused rather than running every run once per rank. */
#include "dist/dist_backend.h"

bool bl_dist_built(void)
{
    return false;
}

int bl__dist_mpi_start(bl_ctx *ctx, const bl__dist_backend **out)
{
    *out = NULL;
    if (bl__dist_launched_size() > 1)
        return bl_error(ctx, BL_EUNSUPPORTED, "running under an MPI launcher with several "
                        "ranks needs MPI, and this batchlab was built without it (cmake "
                        "-DBATCHLAB_MPI=ON with Open MPI's libopenmpi-dev)");
    return BL_OK;
}

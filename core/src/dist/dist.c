/* What the distributed layer says the same way with MPI and without (dist/dist.h). */
#include "dist/dist.h"

bool bl_dist_world_reducer(bl_reducer *out)
{
    bl_dist_comm *world = bl__dist_world();
    if (bl__dist_size(world) < 2)
        return false;
    bl__dist_reducer(world, out);
    return true;
}

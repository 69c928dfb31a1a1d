/* batchlab — umbrella header. Plugins and programs include this (or the single headers). */
#ifndef BATCHLAB_BATCHLAB_H
#define BATCHLAB_BATCHLAB_H

#include "batchlab/error.h"
#include "batchlab/rng.h"
#include "batchlab/device.h"
#include "batchlab/tensor.h"
#include "batchlab/nn.h"
#include "batchlab/optim.h"
#include "batchlab/version.h"
#include "batchlab/config.h"
#include "batchlab/plugin.h"
#include "batchlab/dataset.h"
#include "batchlab/model.h"
#include "batchlab/scheduler.h"
#include "batchlab/train.h"
#include "batchlab/find_batch.h"
#include "batchlab/tfevents.h"
#include "batchlab/json.h"
#include "batchlab/store.h"
#include "batchlab/recommend.h"
#include "batchlab/report.h"

#endif

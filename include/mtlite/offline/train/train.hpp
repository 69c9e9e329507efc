// mtlite's CPU trainer: include this one header.
//
//   options.hpp      TrainOptions: optimiser, learning rate, L2, clipping, balancing, threads
//   trainer.hpp      Trainer: step(batch, labels, mask, weights), weights(), state(), predict()
//   program.hpp      the network compiled for training: ops, fused parameter blocks, tensors
//   task_sets.hpp    which task losses every node feeds; shared and last shared layers
//   parameters.hpp   the training layout of the parameters and its exact conversion to Weights
//   engine.hpp       forward and backward over a chunk of rows
//   math.hpp         the GEMM and row-wise loops (xsimd, or scalar with MTLITE_NO_SIMD)
//   loss.hpp         task losses from logits, masks, sample weights, ESMM
//   balancing.hpp    uncertainty weighting, GradNorm, MetaBalance
//   optimizer.hpp    SGD, Adam, Adagrad; lazy embedding rows
//   affinity.hpp     task affinity (TAG) and the best task grouping
//   diagnostics.hpp  gate statistics: mean weights, entropy, dead experts, collapsed gates
//   thread_pool.hpp  the fixed thread pool
#pragma once

#include "affinity.hpp"
#include "balancing.hpp"
#include "diagnostics.hpp"
#include "engine.hpp"
#include "math.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "task_sets.hpp"
#include "thread_pool.hpp"
#include "trainer.hpp"

// mtlite's CPU trainer: include this one header.
//
//   options.hpp             TrainOptions: optimiser, learning rate, L2, clipping, balancing, threads
//   trainer.hpp             Trainer: step(batch, labels, mask, weights), weights(), state(), predict()
//   checkpoint.hpp          the checkpoint file: every tensor name and metadata key, write and read
//   state.hpp               TrainState: what a step hands to the next (optimiser, balancing, affinity)
//   work_items.hpp          shards, column pieces, table groups: the fixed cuts of a step's work
//   batch_check.hpp         step 1: a batch's inputs checked before any work
//   gradients.hpp           steps 2 and 3: forward/backward over shards, reduction and scatter
//   task_balance.hpp        step 4: task coefficients, the balanced combination, the balancer's update
//   affinity_lookahead.hpp  step 4: TAG's look-ahead measurement on a step's batch
//   parameter_update.hpp    step 5: clipping and the optimiser on the training layout
//   scoring.hpp             forward only: the served outputs and the gate statistics of a batch
//   program.hpp             the network compiled for training: ops, fused parameter blocks, tensors
//   task_sets.hpp           which task losses every node feeds; shared and last shared layers
//   parameters.hpp          the training layout of the parameters and its exact conversion to Weights
//   engine.hpp              forward and backward over a chunk of rows
//   math.hpp                the GEMM and row-wise loops, at the kernels' level (dispatched or not)
//   math_kernels.hpp        their code, compiled per level (xsimd, or scalar with MTLITE_NO_SIMD)
//   loss.hpp                task losses from logits, masks, sample weights, ESMM
//   balancing.hpp           uncertainty weighting, GradNorm, MetaBalance: the arithmetic
//   optimizer.hpp           SGD, Adam, Adagrad; lazy embedding rows
//   affinity.hpp            task affinity (TAG) and the best task grouping
//   diagnostics.hpp         gate statistics: mean weights, entropy, dead experts, collapsed gates
//   thread_pool.hpp         the fixed thread pool
#pragma once

#include "affinity.hpp"
#include "affinity_lookahead.hpp"
#include "balancing.hpp"
#include "batch_check.hpp"
#include "checkpoint.hpp"
#include "diagnostics.hpp"
#include "engine.hpp"
#include "gradients.hpp"
#include "math.hpp"
#include "loss.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "parameter_update.hpp"
#include "parameters.hpp"
#include "program.hpp"
#include "scoring.hpp"
#include "state.hpp"
#include "task_balance.hpp"
#include "task_sets.hpp"
#include "thread_pool.hpp"
#include "trainer.hpp"
#include "work_items.hpp"

#pragma once
// nn/: the minimal transformer classifier with forward and backward passes, losses, optimizers, checkpoints.
#include "robustxlt/nn/checkpoint.hpp"
#include "robustxlt/nn/config.hpp"
#include "robustxlt/nn/loss.hpp"
#include "robustxlt/nn/objective.hpp"
#include "robustxlt/nn/ops.hpp"
#include "robustxlt/nn/optim.hpp"
#include "robustxlt/nn/parameters.hpp"
#include "robustxlt/nn/transformer.hpp"

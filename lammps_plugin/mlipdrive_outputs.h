/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Which of a model's outputs a step uses and how they are read:
 * driver/mlipdrive/outputs.py's choose_outputs() (variants, energy uncertainty,
 * non-conservative heads) step by step, with its tables (output names, variant
 * fall-backs) and messages generated from mlipdrive.outputs and mlipdrive.messages.
 * Nothing here knows LAMMPS; errors are std::runtime_error.
 */
#pragma once

#include <string>
#include <vector>

#include <torch/script.h>

#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

#include "mlipdrive_settings.h"

namespace mlipdrive {

/// The model outputs of one evaluation (mlipdrive.outputs.OutputChoice); an
/// empty key means unused.
struct OutputChoice {
    std::string energy;
    /// per-atom energy uncertainty, checked against the threshold
    std::string uncertainty;
    std::string non_conservative_forces;
    std::string non_conservative_stress;
    /// what the settings asked for but this model cannot give, one line each
    std::vector<std::string> notes;
};

/// mlipdrive.outputs.choose_outputs: the outputs that `settings` ask for, or a
/// std::runtime_error with the same message as Python's.
OutputChoice choose_outputs(const metatomic_torch::ModelCapabilities& capabilities,
                            const InferenceSettings& settings, const std::string& model);

/// mlipdrive.outputs.describe_variants: "default, 'pbe' (description)".
std::string describe_variants(const metatomic_torch::ModelCapabilities& capabilities, const std::string& output);

/// Values of a per-atom block as (n_samples, width) float64 on the CPU, and the
/// System index of each sample's atom.
struct PerAtomValues {
    torch::Tensor values;
    torch::Tensor atoms;
};
/// Checks the block's shape against metatomic's definition of a per-atom output:
/// a std::runtime_error naming `output`, both shapes and `advice` otherwise.
PerAtomValues per_atom_values(const metatensor_torch::TensorBlock& block, int64_t width, const std::string& output,
                              const std::string& advice);

/// "(3, 3, 1)": a shape as the messages write it (as Python's).
std::string shape_text(const std::vector<int64_t>& shape);

/// The same System with `cell` and `pbc` (the box), and without autograd leaves
/// when `detach`: what a stress head sees (its 1/volume is the structure's, also
/// in the layouts that keep ghosts, whose pairs keep zero cell shifts along the
/// cut axes), and a non-conservative step without any gradient.
metatomic_torch::System system_with_cell(const metatomic_torch::System& system, torch::Tensor cell, torch::Tensor pbc,
                                         bool detach);

}  // namespace mlipdrive

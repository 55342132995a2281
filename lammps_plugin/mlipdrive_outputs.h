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
PerAtomValues per_atom_values(const metatensor_torch::TensorBlock& block, int64_t width);

/// The same System without autograd leaves, with `cell` and `pbc` (the box):
/// what the model sees in non-conservative mode, where no gradient is taken and
/// the stress head needs the volume of the box (also in the ghosts layout,
/// whose pairs keep zero cell shifts).
metatomic_torch::System detached_system(const metatomic_torch::System& system, torch::Tensor cell, torch::Tensor pbc);

}  // namespace mlipdrive

/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Loading a metatomic model and applying the inference settings to it: the C++
 * mirror of driver/mlipdrive/loading.py. Nothing here knows LAMMPS; errors
 * are std::runtime_error whose message names the cause and the fix.
 */
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/script.h>

#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

#include "mlipdrive_settings.h"

namespace mlipdrive {

/// A loaded model, ready to run with its settings on its device.
struct LoadedModel {
    /// the TorchScript AtomisticModel (possibly converted to another dtype)
    torch::jit::Module module;
    /// capabilities after the dtype conversion
    metatomic_torch::ModelCapabilities capabilities;
    /// neighbour lists the model asks for
    std::vector<metatomic_torch::NeighborListOptions> requested_neighbor_lists;
    /// model name from its metadata
    std::string name;
    /// where it runs
    torch::Device device = torch::Device(torch::kCPU);
    /// dtype of the evaluation (positions, cell, neighbour vectors)
    torch::ScalarType dtype = torch::kFloat64;
    /// what applying the settings did, one line each, for the log
    std::vector<std::string> notes;
};

/// Check and load `path` with metatomic, with errors that name the fix.
LoadedModel load_model(const std::string& path, const std::optional<std::string>& extensions);

/// The device kind (torch::kCPU / torch::kCUDA) of a `device` keyword value, and
/// its index (-1 if none was given). Throws for other values.
std::pair<torch::DeviceType, int> parse_device(const std::string& text);

/// torch intra-op threads for the `threads` setting: the rule of the threads row
/// of mlipdrive.settings.SETTINGS (N > 0: N; 0: OMP_NUM_THREADS if set, else the
/// usable cores divided by the MPI ranks on this node, at least 1).
int torch_threads(int requested, int ranks_on_node);

/// Apply `settings` to the model (dtype, device, graph executor, fusion, TF32)
/// and torch's process-wide switches; `threads` is the number of torch
/// intra-op threads to use (already resolved by the caller).
void apply_settings(LoadedModel& model, const InferenceSettings& settings, torch::Device device, int threads);

/// First line of an exception message.
std::string first_line(const std::string& text);

/// What an exception says, without the C++ frames that torch's errors
/// (c10::Error) carry after their message.
std::string error_text(const std::exception& error);

}  // namespace mlipdrive

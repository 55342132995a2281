/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_model.h"

#include <sys/stat.h>

#include <stdexcept>

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include "mlipdrive_settings_parse.h"

namespace mlipdrive {

bool lammps_unit_system(const std::string& style, UnitSystem& units) {
    // LAMMPS unit style -> the units metatomic converts to; the same table as
    // driver/mlipdrive/units.py
    if (style == "metal") {
        units = {"angstrom", "eV"};
    } else if (style == "real") {
        units = {"angstrom", "kcal/mol"};
    } else if (style == "electron") {
        units = {"Bohr", "Hartree"};
    } else if (style == "si") {
        units = {"m", "J"};
    } else {
        return false;
    }
    return true;
}

std::string first_line(const std::string& text) {
    auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

static bool is_file(const std::string& path) {
    struct stat info = {};
    return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

static bool is_directory(const std::string& path) {
    struct stat info = {};
    return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

LoadedModel load_model(const std::string& path, const std::optional<std::string>& extensions) {
    if (!is_file(path)) {
        throw std::runtime_error(
            "model file '" + path + "' does not exist; give the path of an exported "
            "metatomic model (.pt) as the first argument of pair_style mlipdrive, "
            "e.g. models/mace/mace-cual.pt"
        );
    }
    if (extensions && !is_directory(*extensions)) {
        throw std::runtime_error(
            "extensions directory '" + *extensions + "' does not exist; give the "
            "folder that holds the model's TorchScript extensions (mtt export writes one)"
        );
    }

    const auto extensions_fix = "\nGive the extensions directory in pair_style: 'pair_style mlipdrive " +
        path + " extensions DIR' (DIR is the folder 'mtt export' or "
        "AtomisticModel.save(collect_extensions=...) wrote); set "
        "METATENSOR_DEBUG_EXTENSIONS_LOADING=1 to see every path tried";
    auto not_loadable = [&](const std::exception& error) {
        return std::runtime_error(
            "'" + path + "' is not a loadable metatomic model (" + first_line(error.what()) +
            "); export it again with metatomic (AtomisticModel.save or mtt export)"
        );
    };
    c10::optional<std::string> directory = c10::nullopt;
    if (extensions) {
        directory = *extensions;
    }

    // the same steps as metatomic's load_atomistic_model, one at a time, so that
    // the error says which one failed
    try {
        metatomic_torch::check_atomistic_model(path);
    } catch (const std::exception& error) {
        throw not_loadable(error);
    }
    try {
        metatomic_torch::load_model_extensions(path, directory);
    } catch (const std::exception& error) {
        throw std::runtime_error(
            "model '" + path + "' needs TorchScript extensions that could not be loaded: " +
            first_line(error.what()) + extensions_fix
        );
    }
    LoadedModel loaded;
    try {
        loaded.module = metatomic_torch::load_atomistic_model(path, directory);
    } catch (const std::exception& error) {
        std::string text = error.what();
        if (text.find("Unknown type name") != std::string::npos ||
            text.find("Unknown builtin op") != std::string::npos) {
            throw std::runtime_error(
                "model '" + path + "' needs TorchScript extensions that are not loaded (" +
                first_line(text) + ")" + extensions_fix
            );
        }
        throw not_loadable(error);
    }

    loaded.module.eval();
    loaded.capabilities = loaded.module.run_method("capabilities")
                              .toCustomClass<metatomic_torch::ModelCapabilitiesHolder>();
    auto requests = loaded.module.run_method("requested_neighbor_lists").toList();
    for (const auto& request: requests) {
        loaded.requested_neighbor_lists.push_back(
            request.get().toCustomClass<metatomic_torch::NeighborListOptionsHolder>()
        );
    }
    loaded.name = loaded.module.run_method("metadata")
                      .toCustomClass<metatomic_torch::ModelMetadataHolder>()
                      ->name;

    const auto outputs = loaded.capabilities->outputs();
    if (!outputs.contains("energy")) {
        std::string names;
        for (const auto& item: outputs) {
            names += (names.empty() ? "" : ", ") + item.key();
        }
        throw std::runtime_error(
            "model '" + path + "' has no 'energy' output (it has " + names +
            "); pair_style mlipdrive runs conservative energy models"
        );
    }
    const auto& dtype = loaded.capabilities->dtype();
    if (dtype == "float64") {
        loaded.dtype = torch::kFloat64;
    } else if (dtype == "float32") {
        loaded.dtype = torch::kFloat32;
    } else {
        throw std::runtime_error(
            "model dtype '" + dtype + "' unsupported; re-export the model as float32 or float64"
        );
    }
    return loaded;
}

std::pair<torch::DeviceType, int> parse_device(const std::string& text) {
    if (text == "cpu") {
        return {torch::kCPU, -1};
    }
    if (text == "cuda") {
        return {torch::kCUDA, -1};
    }
    if (text.rfind("cuda:", 0) == 0) {
        int index = 0;
        auto message = parse_int("device", text.substr(5), index);
        if (message.empty() && index >= 0) {
            return {torch::kCUDA, index};
        }
    }
    throw std::runtime_error(
        "expected cpu, cuda or cuda:N after 'device' in pair_style mlipdrive, got '" + text + "'"
    );
}

/// The model converted to `dtype`, with capabilities that declare it, so that
/// metatomic's dtype checks pass (the same as with_dtype in model_loading.py).
static void convert_dtype(LoadedModel& model, const std::string& dtype) {
    if (dtype == "model" || dtype == model.capabilities->dtype()) {
        return;
    }
    auto scalar = dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
    if (!model.module.hasattr("_capabilities") || !model.module.hasattr("_model_dtype")) {
        throw std::runtime_error(
            "cannot run this model as " + dtype + ": it is not a metatomic "
            "AtomisticModel this plugin knows how to convert; use 'dtype model' or "
            "export the model as " + dtype
        );
    }
    // only floating-point tensors change type, as with torch.nn.Module.to in
    // Python: Module::to(dtype) would also cast integer buffers (e.g. the atomic
    // type tables MACE feeds to one_hot), which must stay integers
    for (auto tensor : model.module.parameters(/*recurse=*/true)) {
        if (tensor.is_floating_point()) {
            tensor.set_data(tensor.to(scalar));
        }
    }
    for (auto tensor : model.module.buffers(/*recurse=*/true)) {
        if (tensor.is_floating_point()) {
            tensor.set_data(tensor.to(scalar));
        }
    }
    auto capabilities = metatomic_torch::ModelCapabilitiesHolder::from_json(
        model.capabilities->to_json()
    );
    capabilities->set_dtype(dtype);
    model.module.setattr("_capabilities", torch::IValue(capabilities));
    model.module.setattr("_model_dtype", torch::IValue(static_cast<int64_t>(scalar)));
    model.capabilities = capabilities;
    model.dtype = scalar;
    model.notes.push_back("dtype: converted to " + dtype);
}

void apply_settings(LoadedModel& model, const InferenceSettings& settings, torch::Device device, int threads) {
    if (threads > 0) {
        torch::set_num_threads(threads);
    }
    torch::jit::setGraphExecutorOptimize(settings.graph_optimize);
    std::vector<std::pair<std::string, int>> strategy;
    if (!parse_fusion_strategy(settings.fusion_strategy, strategy)) {
        throw std::runtime_error(
            "fusion_strategy must look like 'STATIC:2,DYNAMIC:10', got '" +
            settings.fusion_strategy + "'"
        );
    }
    if (!strategy.empty()) {
        torch::jit::FusionStrategy torch_strategy;
        for (const auto& item: strategy) {
            auto kind = item.first == "STATIC" ? torch::jit::FusionBehavior::STATIC
                                               : torch::jit::FusionBehavior::DYNAMIC;
            torch_strategy.emplace_back(kind, static_cast<size_t>(item.second));
        }
        torch::jit::setFusionStrategy(torch_strategy);
    }
    if (device.is_cuda()) {
        at::globalContext().setAllowTF32CuBLAS(settings.tf32);
        at::globalContext().setAllowTF32CuDNN(settings.tf32);
    }

    convert_dtype(model, settings.dtype);
    model.module.to(device);
    model.device = device;

    if (settings.freeze) {
        // freezing needs every attribute to be inspectable; metatomic models hold
        // metatensor objects (Capsule) that are not, so this usually does nothing,
        // as in the Python driver ("silently skipped where the model cannot be frozen")
        try {
            auto frozen = torch::jit::freeze(
                model.module,
                std::vector<std::string>{"capabilities", "requested_neighbor_lists", "metadata", "requested_inputs"}
            );
            model.module = frozen;
            model.notes.push_back("freeze: applied");
        } catch (const std::exception& error) {
            model.notes.push_back("freeze: skipped, this model cannot be frozen (" + first_line(error.what()) + ")");
        }
    }
}

}  // namespace mlipdrive

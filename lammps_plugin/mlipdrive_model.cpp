/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_model.h"

#include <sched.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include <stdexcept>

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include "mlipdrive_python_rules.h"
#include "mlipdrive_settings_parse.h"

namespace mlipdrive {

std::string first_line(const std::string& text) {
    auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

std::string error_text(const std::exception& error) {
    const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
    return torch_error != nullptr ? torch_error->what_without_backtrace() : error.what();
}

static bool is_file(const std::string& path) {
    struct stat info = {};
    return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

static bool is_directory(const std::string& path) {
    struct stat info = {};
    return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

/// The TorchScript module, with the steps of metatomic's load_atomistic_model one
/// at a time, so that the error says which one failed.
static torch::jit::Module load_module(const std::string& path, const c10::optional<std::string>& directory) {
    try {
        metatomic_torch::check_atomistic_model(path);
    } catch (const std::exception& error) {
        throw std::runtime_error(not_loadable_message(path, first_line(error.what())));
    }
    try {
        metatomic_torch::load_model_extensions(path, directory);
    } catch (const std::exception& error) {
        throw std::runtime_error(extensions_not_loaded_message(path, first_line(error.what())));
    }
    try {
        return metatomic_torch::load_atomistic_model(path, directory);
    } catch (const std::exception& error) {
        std::string text = error.what();
        if (text.find("Unknown type name") != std::string::npos ||
            text.find("Unknown builtin op") != std::string::npos) {
            throw std::runtime_error(extensions_not_loaded_message(path, first_line(text)));
        }
        throw std::runtime_error(not_loadable_message(path, first_line(text)));
    }
}

/// Capabilities, neighbour-list requests, name and dtype of a loaded module.
static void read_model_info(LoadedModel& loaded, const std::string& path) {
    loaded.capabilities = loaded.module.run_method("capabilities")
                              .toCustomClass<metatomic_torch::ModelCapabilitiesHolder>();
    for (const auto& request: loaded.module.run_method("requested_neighbor_lists").toList()) {
        loaded.requested_neighbor_lists.push_back(
            request.get().toCustomClass<metatomic_torch::NeighborListOptionsHolder>()
        );
    }
    loaded.name = loaded.module.run_method("metadata").toCustomClass<metatomic_torch::ModelMetadataHolder>()->name;
    // an energy output, or only variants of it (energy/pbe): choose_outputs()
    // picks the one the settings ask for
    const auto outputs = loaded.capabilities->outputs();
    bool has_energy = false;
    std::string names;
    for (const auto& item: outputs) {
        names += (names.empty() ? "" : ", ") + item.key();
        has_energy = has_energy || item.key() == "energy" || item.key().rfind("energy/", 0) == 0;
    }
    if (!has_energy) {
        throw std::runtime_error(no_energy_output_message(path, names));
    }
    const auto& dtype = loaded.capabilities->dtype();
    if (dtype != "float64" && dtype != "float32") {
        throw std::runtime_error("model dtype '" + dtype + "' unsupported; re-export the model as float32 or float64");
    }
    loaded.dtype = dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
}

LoadedModel load_model(const std::string& path, const std::optional<std::string>& extensions) {
    if (is_directory(path)) {
        throw std::runtime_error(model_is_directory_message(path));
    }
    if (!is_file(path)) {
        throw std::runtime_error(model_missing_message(path));
    }
    if (extensions && !is_directory(*extensions)) {
        throw std::runtime_error(extensions_directory_missing_message(*extensions));
    }
    c10::optional<std::string> directory = c10::nullopt;
    if (extensions) {
        directory = *extensions;
    }
    LoadedModel loaded;
    loaded.module = load_module(path, directory);
    loaded.module.eval();
    read_model_info(loaded, path);
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
/// metatomic's dtype checks pass (the same as with_dtype in loading.py).
/// The classes of the model's modules that hold a TensorMap or TensorBlock as an
/// attribute of their own (mlipdrive.loading.tensor_map_weights, the same rule).
static std::vector<std::string> tensor_map_weights(const torch::jit::Module& module) {
    std::vector<std::string> found;
    for (const auto& child: module.named_modules()) {
        const auto type = child.value.type();
        for (const auto& attribute: type->containedTypes()) {
            auto text = attribute->str();
            // torch spells Optional[T] "T?"
            if (!text.empty() && text.back() == '?') {
                text.pop_back();
            }
            const auto known = std::find(std::begin(TENSOR_MAP_CLASSES), std::end(TENSOR_MAP_CLASSES), text);
            if (known == std::end(TENSOR_MAP_CLASSES)) {
                continue;
            }
            auto name = type->name()->qualifiedName();
            const std::string prefix = "__torch__.";
            name = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
            if (std::find(found.begin(), found.end(), name) == found.end()) {
                found.push_back(name);
            }
            break;
        }
    }
    return found;
}

static void convert_dtype(LoadedModel& model, const std::string& dtype) {
    if (dtype == "model" || dtype == model.capabilities->dtype()) {
        return;
    }
    const auto unreachable = tensor_map_weights(model.module);
    if (!unreachable.empty()) {
        std::string modules;
        for (const auto& name: unreachable) {
            modules += (modules.empty() ? "" : ", ") + name;
        }
        throw std::runtime_error(dtype_unreachable_weights_message(
            model.name.empty() ? "model" : model.name, dtype, modules, model.capabilities->dtype()
        ));
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

int torch_threads(int requested, int ranks_on_node) {
    if (requested > 0) {
        return requested;
    }
    // as str.isdigit() in Python: digits only
    const std::string omp = std::getenv("OMP_NUM_THREADS") != nullptr ? std::getenv("OMP_NUM_THREADS") : "";
    if (!omp.empty() && omp.size() < 9 && omp.find_first_not_of("0123456789") == std::string::npos &&
        std::stoi(omp) > 0) {
        return std::stoi(omp);
    }
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    const int cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    return std::max(1, cores / std::max(1, ranks_on_node));
}

void apply_settings(LoadedModel& model, const InferenceSettings& settings, torch::Device device, int threads) {
    torch::set_num_threads(threads);
    if (settings.tf32 && !device.is_cuda()) {
        model.notes.push_back("tf32: no effect on CPU");
    }
    torch::jit::setGraphExecutorOptimize(settings.graph_optimize);
    std::vector<std::pair<std::string, int>> strategy;
    if (!parse_fusion_strategy(settings.fusion_strategy, strategy)) {
        throw std::runtime_error(fusion_strategy_error(settings.fusion_strategy));
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
}

}  // namespace mlipdrive

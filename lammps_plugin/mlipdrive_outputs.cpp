/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * driver/mlipdrive/outputs.py's choose_outputs() in C++, with its tables
 * (output_names, variant_setting) generated from it; see mlipdrive_outputs.h.
 */
#include "mlipdrive_outputs.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <utility>

#include "mlipdrive_python_rules.h"

namespace mlipdrive {

namespace {

using Outputs = c10::Dict<std::string, metatomic_torch::ModelOutput>;
using Variant = std::optional<std::string>;

/// (variant, the setting that chose it) of an output, as requested_variants()
struct Requested {
    Variant variant;
    std::string setting;
};

Requested requested(const InferenceSettings& s, const std::string& output) {
    const auto [text, setting] = variant_setting(s, output);
    if (text.empty() || text == "off") {
        return {std::nullopt, setting};
    }
    return {text, setting};
}

std::string key_of(const Outputs& outputs, const std::string& output, const Variant& variant) {
    for (const auto& name: output_names(output)) {
        const auto key = variant ? name + "/" + *variant : name;
        if (outputs.contains(key)) {
            return key;
        }
    }
    return "";
}

std::vector<Variant> variants_of(const Outputs& outputs, const std::string& output) {
    std::vector<Variant> found;
    for (const auto& name: output_names(output)) {
        for (const auto& item: outputs) {
            const auto& key = item.key();
            const auto slash = key.find('/');
            if (key.substr(0, slash) != name) {
                continue;
            }
            Variant variant = slash == std::string::npos ? std::nullopt : Variant(key.substr(slash + 1));
            if (variant && variant->empty()) {
                variant = std::nullopt;
            }
            if (std::find(found.begin(), found.end(), variant) == found.end()) {
                found.push_back(variant);
            }
        }
    }
    std::sort(found.begin(), found.end(), [](const Variant& a, const Variant& b) {
        if (a.has_value() != b.has_value()) {
            return !a.has_value();
        }
        return a.value_or("") < b.value_or("");
    });
    return found;
}

std::string describe(const Outputs& outputs, const std::string& output) {
    std::string text;
    for (const auto& variant: variants_of(outputs, output)) {
        const auto& description = outputs.at(key_of(outputs, output, variant))->description;
        auto word = variant ? python_repr(*variant) : std::string("default");
        if (!description.empty()) {
            word += " (" + description + ")";
        }
        text += (text.empty() ? "" : ", ") + word;
    }
    return text;
}

/// pick_output(): the key, "" if the model has no such output at all; throws
/// when only other variants exist
std::string pick(const Outputs& outputs, const std::string& output, const Requested& asked, const std::string& model) {
    auto key = key_of(outputs, output, asked.variant);
    if (!key.empty() || variants_of(outputs, output).empty()) {
        return key;
    }
    const auto variants = describe(outputs, output);
    if (!asked.variant) {
        throw std::runtime_error(no_default_output_message(model, output, variants));
    }
    const auto setting = asked.setting.empty() ? std::string("variant") : asked.setting;
    throw std::runtime_error(variant_missing_message(model, *asked.variant, output, setting, variants));
}

std::string key_list(const Outputs& outputs) {
    std::string text;
    for (const auto& item: outputs) {
        text += (text.empty() ? "" : ", ") + item.key();
    }
    return text;
}

/// The non-conservative outputs the settings take from the model (choose_outputs'
/// _heads in Python: forces_from_head and stress_from_head are generated from it).
void choose_heads(const Outputs& outputs, const InferenceSettings& s, const std::string& model,
                  OutputChoice& choice) {
    if (forces_from_head(s)) {
        choice.non_conservative_forces = pick(
            outputs, "non_conservative_forces",
            requested(s, "non_conservative_forces"), model);
        if (choice.non_conservative_forces.empty() ||
            outputs.at(choice.non_conservative_forces)->sample_kind() != "atom") {
            throw std::runtime_error(no_non_conservative_forces_message(model, key_list(outputs)));
        }
    }
    if (stress_from_head(s)) {
        choice.non_conservative_stress = pick(
            outputs, "non_conservative_stress",
            requested(s, "non_conservative_stress"), model);
        if (choice.non_conservative_stress.empty() && !forces_from_head(s)) {
            throw std::runtime_error(no_non_conservative_stress_head_message(model, key_list(outputs)));
        }
        if (choice.non_conservative_stress.empty()) {
            choice.notes.push_back(no_non_conservative_stress_message(model));
        }
    }
}

}  // namespace

OutputChoice choose_outputs(const metatomic_torch::ModelCapabilities& capabilities,
                            const InferenceSettings& s, const std::string& model) {
    const auto outputs = capabilities->outputs();
    OutputChoice choice;
    choice.energy = pick(outputs, "energy", requested(s, "energy"), model);
    if (choice.energy.empty()) {
        throw std::runtime_error(no_energy_message(model, key_list(outputs)));
    }
    if (s.uncertainty_threshold > 0) {
        choice.uncertainty = pick(outputs, "energy_uncertainty",
                                  requested(s, "energy_uncertainty"), model);
        if (choice.uncertainty.empty() && s.uncertainty_action == "stop") {
            choice.notes.push_back(uncertainty_stop_unchecked_message(model));
        }
        if (!choice.uncertainty.empty() && outputs.at(choice.uncertainty)->sample_kind() != "atom") {
            choice.notes.push_back(uncertainty_not_per_atom_message(choice.uncertainty));
            choice.uncertainty.clear();
        }
    }
    choose_heads(outputs, s, model, choice);
    return choice;
}

std::string describe_variants(const metatomic_torch::ModelCapabilities& capabilities, const std::string& output) {
    return describe(capabilities->outputs(), output);
}

PerAtomValues per_atom_values(const metatensor_torch::TensorBlock& block, int64_t width, const std::string& output,
                              const std::string& advice) {
    auto values = block->values();
    const int64_t rows = block->samples()->count();
    const std::vector<int64_t> expected = width > 1 ? std::vector<int64_t>{rows, width, 1} : std::vector<int64_t>{rows, 1};
    if (values.sizes().vec() != expected) {
        throw std::runtime_error(output_shape_message(
            output, shape_text(values.sizes().vec()), shape_text(expected),
            width == 3 ? "one 3-vector per atom" : "one value per atom", advice
        ));
    }
    values = values.detach().to(torch::kCPU).to(torch::kFloat64).reshape({-1, width}).contiguous();
    auto samples = block->samples()->values();
    auto atoms = samples.index({torch::indexing::Slice(), -1}).to(torch::kCPU).to(torch::kInt64).contiguous();
    return {values, atoms};
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text;
    for (auto size: shape) {
        text += (text.empty() ? "" : ", ") + std::to_string(size);
    }
    return "(" + text + ")";
}

metatomic_torch::System system_with_cell(const metatomic_torch::System& system, torch::Tensor cell, torch::Tensor pbc,
                                         bool detach) {
    const auto positions = detach ? system->positions().detach() : system->positions();
    auto copy = torch::make_intrusive<metatomic_torch::SystemHolder>(
        system->types(), positions, cell.to(positions.scalar_type()).to(positions.device()), pbc.to(positions.device())
    );
    for (const auto& options: system->known_neighbor_lists()) {
        auto block = system->get_neighbor_list(options);
        if (detach) {
            block = torch::make_intrusive<metatensor_torch::TensorBlockHolder>(
                block->values().detach(), block->samples(), block->components(), block->properties()
            );
        }
        copy->add_neighbor_list(options, block);
    }
    return copy;
}

}  // namespace mlipdrive

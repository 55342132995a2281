/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * mlipdrive-rules-probe: the plugin's own C++ implementations of the rules it
 * shares with driver/mlipdrive (choose_outputs, torch_threads, the worst-atom
 * uncertainty report), callable one question per line on stdin, so that
 * tests/test_rules_drift.py can put the same questions to both languages and
 * fail on the first answer that differs. Only a test tool; LAMMPS never runs it.
 *
 * Questions (fields separated by tabs), one answer line each:
 *   threads <TAB> REQUESTED <TAB> RANKS_ON_NODE      -> N
 *   outputs <TAB> KEY VALUE ... <TAB> NAME:KIND:UNIT,... -> energy=..;uncertainty=..;forces=..;stress=..;notes=A|B
 *   uncertainty <TAB> THRESHOLD <TAB> ID:VALUE,...    -> count=N;worst=TEXT
 * The settings of `outputs` are pair_style words ("preset turbo non_conservative
 * forces"); an error answers "error=MESSAGE". Newlines in answers print as "\n".
 */
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

#include "mlipdrive_model.h"
#include "mlipdrive_outputs.h"
#include "mlipdrive_python_rules.h"
#include "mlipdrive_uncertainty.h"

namespace {

/// the parts of `text` between separators; empty ones only with `keep_empty`
std::vector<std::string> split(const std::string& text, char separator, bool keep_empty = false) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, separator)) {
        if (keep_empty || !part.empty()) {
            parts.push_back(part);
        }
    }
    return parts;
}

std::string one_line(const std::string& text) {
    std::string line;
    for (char c: text) {
        line += c == '\n' ? std::string("\\n") : std::string(1, c);
    }
    return line;
}

/// pair_style words: "preset NAME" first wherever it stands, then KEY VALUE pairs
mlipdrive::InferenceSettings settings_from_words(const std::string& text) {
    const auto words = split(text, ' ');
    if (words.size() % 2 != 0) {
        throw std::runtime_error("settings need KEY VALUE pairs: '" + text + "'");
    }
    mlipdrive::InferenceSettings settings;
    for (size_t k = 0; k < words.size(); k += 2) {
        if (words[k] == "preset" && !mlipdrive::apply_preset(settings, words[k + 1])) {
            throw std::runtime_error("unknown preset '" + words[k + 1] + "'");
        }
    }
    for (size_t k = 0; k < words.size(); k += 2) {
        if (words[k] == "preset") {
            continue;
        }
        const auto message = mlipdrive::set_setting(settings, words[k], words[k + 1]);
        if (!message.empty()) {
            throw std::runtime_error(message);
        }
    }
    const auto out_of_range = mlipdrive::check_settings(settings);
    if (!out_of_range.empty()) {
        throw std::runtime_error(out_of_range);
    }
    return settings;
}

/// capabilities with outputs NAME:SAMPLE_KIND:UNIT (described by their name)
metatomic_torch::ModelCapabilities capabilities_from(const std::string& text) {
    c10::Dict<std::string, metatomic_torch::ModelOutput> outputs;
    for (const auto& item: split(text, ',')) {
        const auto parts = split(item, ':', true);
        outputs.insert(parts.at(0), torch::make_intrusive<metatomic_torch::ModelOutputHolder>(
                                        "", parts.at(2), parts.at(1), std::vector<std::string>{}, parts.at(0)));
    }
    auto capabilities = torch::make_intrusive<metatomic_torch::ModelCapabilitiesHolder>();
    capabilities->set_outputs(outputs);
    return capabilities;
}

std::string answer_outputs(const std::vector<std::string>& fields) {
    const auto choice = mlipdrive::choose_outputs(capabilities_from(fields.at(2)),
                                                  settings_from_words(fields.at(1)), "model");
    std::string notes;
    for (const auto& note: choice.notes) {
        notes += (notes.empty() ? "" : "|") + note;
    }
    return "energy=" + choice.energy + ";uncertainty=" + choice.uncertainty +
           ";forces=" + choice.non_conservative_forces + ";stress=" + choice.non_conservative_stress +
           ";notes=" + notes;
}

std::string answer_uncertainty(const std::vector<std::string>& fields) {
    std::vector<double> values;
    std::vector<long> ids;
    for (const auto& item: split(fields.at(2), ',')) {
        const auto colon = item.find(':');
        ids.push_back(std::stol(item.substr(0, colon)));
        values.push_back(std::stod(item.substr(colon + 1)));
    }
    const auto report = mlipdrive::gather_uncertainty(MPI_COMM_WORLD, values, ids, std::stod(fields.at(1)));
    return "count=" + std::to_string(report.count) + ";worst=" + report.worst;
}

std::string answer(const std::string& line) {
    const auto fields = split(line, '\t', true);
    if (fields.empty()) {
        throw std::runtime_error("empty question");
    }
    if (fields[0] == "threads") {
        return std::to_string(mlipdrive::torch_threads(std::stoi(fields.at(1)), std::stoi(fields.at(2))));
    }
    if (fields[0] == "outputs") {
        return answer_outputs(fields);
    }
    if (fields[0] == "uncertainty") {
        return answer_uncertainty(fields);
    }
    throw std::runtime_error("unknown question '" + fields[0] + "'");
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    std::string line;
    while (std::getline(std::cin, line)) {
        try {
            std::cout << one_line(answer(line)) << std::endl;
        } catch (const std::exception& error) {
            std::cout << "error=" << one_line(error.what()) << std::endl;
        }
    }
    MPI_Finalize();
    return 0;
}

/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * The pair-style lifecycle: one method per input command (pair_style ->
 * settings, pair_coeff -> coeff, run -> init_style/init_one/compute). The model
 * side mirrors driver/mlipdrive (loading.py, potential.py) and is tested
 * against it.
 */
#include "pair_mlipdrive.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <typeinfo>

#include <torch/cuda.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>

#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#if !MLIPDRIVE_LAMMPS_HAS_ADD_REQUEST
#include "neigh_request.h"
#endif
#include "update.h"
#include "utils.h"

#include "mlipdrive_autograd.h"
#include "mlipdrive_model.h"
#include "mlipdrive_outputs.h"
#include "mlipdrive_settings.h"
#include "mlipdrive_python_rules.h"
#include "mlipdrive_system.h"
#include "mlipdrive_uncertainty.h"
#include "mlipdrive_verify.h"

using namespace LAMMPS_NS;

namespace mlipdrive {

/// Element symbols by atomic number (index 0 unused).
static const char* const ELEMENTS[] = {
    "",   "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si",
    "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru",
    "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",
    "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac",
    "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf",
    "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
};
static const int N_ELEMENTS = sizeof(ELEMENTS) / sizeof(ELEMENTS[0]);

/// Atomic number of a symbol ("Cu") or a number ("29"); -1 if neither.
static int atomic_number(const std::string& text) {
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) {
        char* end = nullptr;
        long value = std::strtol(text.c_str(), &end, 10);
        return (*end == '\0' && value > 0 && value < 1000) ? static_cast<int>(value) : -1;
    }
    for (int z = 1; z < N_ELEMENTS; z++) {
        if (text == ELEMENTS[z]) {
            return z;
        }
    }
    return -1;
}

static std::string element_name(int z) {
    if (z > 0 && z < N_ELEMENTS) {
        return std::string(ELEMENTS[z]) + " (" + std::to_string(z) + ")";
    }
    return std::to_string(z);
}

/// FNV-1a (64 bits) of a file's bytes, in hex; empty if it cannot be read.
static std::string file_digest(const std::string& path) {
    FILE* file = fopen(path.c_str(), "rb");
    if (file == nullptr) {
        return "";
    }
    uint64_t hash = 1469598103934665603ULL;
    char buffer[1 << 16];
    size_t count = 0;
    while ((count = fread(buffer, 1, sizeof(buffer), file)) > 0) {
        for (size_t k = 0; k < count; k++) {
            hash = (hash ^ static_cast<unsigned char>(buffer[k])) * 1099511628211ULL;
        }
    }
    fclose(file);
    return fmt::format("{:016x}", hash);
}

/// What the pair style keeps between calls; all torch objects live here.
struct PairState {
    // ---- from pair_style
    /// path of the model file
    std::string model_path;
    /// digest of the model file's bytes as loaded (rank 0), kept in restart files
    std::string model_digest;
    /// TorchScript extensions directory, if given
    std::optional<std::string> extensions;
    /// 'device' keyword as given
    std::string device_text = "cpu";
    /// 'mode' keyword: auto, ghosts or periodic
    std::string mode = "auto";
    /// the inference settings (preset + KEY VALUE overrides)
    InferenceSettings settings;

    // ---- the model
    LoadedModel model;
    /// units of this LAMMPS run, as metatomic spells them
    UnitSystem units;
    /// the model's neighbour lists with cutoffs in LAMMPS length units
    std::vector<PairRequest> requests;
    /// largest neighbour-list cutoff (LAMMPS units)
    double max_cutoff = 0.0;
    /// model's interaction range (LAMMPS units; may be infinite)
    double interaction_range = 0.0;
    /// the interaction range exceeds one neighbour cutoff (message passing)
    bool message_passing = false;
    /// the model outputs the settings ask for: energy variant, uncertainty,
    /// non-conservative heads (mlipdrive_outputs.h)
    OutputChoice outputs;
    /// atom_energy_sum on a model with per-atom energies: always ask for them
    bool sum_atom_energies = false;
    /// per-atom energy uncertainty (eV) of the local atoms in the last step, zero
    /// for atoms the model does not handle; `fix pair` reads it (extract_peratom)
    std::vector<double> uncertainty;

    // ---- from pair_coeff
    /// atomic number of each LAMMPS type (index 0 unused), -1 for NULL
    std::vector<int32_t> atomic_numbers;

    // ---- from init_style
    /// which axes fold ghost images, whether other ghosts are System atoms
    mlipdrive::Layout layout;
    std::unique_ptr<SystemAdaptor> adaptor;
    /// verify on: the System built from scratch at every step, to compare
    std::unique_ptr<SystemAdaptor> fresh;

    // ---- what LAMMPS's neighbour list was at the last step (see list_rebuilt)
    bigint last_neighbor_calls = -1;
    bigint last_build_step = -1;
    NeighList* last_list = nullptr;
    int last_nlocal = -1;
    int last_nghost = -1;

    // ---- timings (seconds) for finish()
    double time_system = 0.0;
    double time_forward = 0.0;
    double time_backward = 0.0;
    double time_store = 0.0;
    /// the uncertainty check alone (copy, MPI reduction, message), not the model's head
    double time_check = 0.0;
    /// verify on: building the System from scratch and comparing
    double time_verify = 0.0;
    long evaluations = 0;
    /// the pairs' forces before they join f, when only the global virial is asked
    std::vector<double> scratch_forces;
    /// non_conservative forces: the energy's gradient forces, not used (rows of 3)
    std::vector<double> discarded_forces;
    std::vector<double*> discarded_rows;
};

static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

static metatomic_torch::ModelOutput model_output(const std::string& unit, const char* sample_kind) {
    auto output = torch::make_intrusive<metatomic_torch::ModelOutputHolder>();
    output->set_unit(unit);
    output->set_sample_kind(sample_kind);
    return output;
}

/// What one step asks the model for (Potential.model_outputs in Python).
struct Request {
    bool energy = true;
    bool per_atom_energy = false;
    bool forces = false;
    bool stress = false;
};

static metatomic_torch::ModelEvaluationOptions evaluation_options(const PairState& s, const Request& request) {
    const auto& chosen = s.outputs;
    const auto& units = s.units;
    auto outputs = torch::Dict<std::string, metatomic_torch::ModelOutput>();
    if (request.energy) {
        const bool per_atom = request.per_atom_energy || s.sum_atom_energies;
        outputs.insert(chosen.energy, model_output(units.energy, per_atom ? "atom" : "system"));
    }
    if (!chosen.uncertainty.empty()) {
        // in eV whatever the units: the threshold is in eV
        outputs.insert(chosen.uncertainty, model_output("eV", "atom"));
    }
    if (request.forces) {
        outputs.insert(chosen.non_conservative_forces, model_output(units.energy + "/" + units.length, "atom"));
    }
    if (request.stress) {
        outputs.insert(chosen.non_conservative_stress,
                       model_output(units.energy + "/" + units.length + "^3", "system"));
    }
    return torch::make_intrusive<metatomic_torch::ModelEvaluationOptionsHolder>(
        units.length, outputs, torch::nullopt
    );
}

}  // namespace mlipdrive

using mlipdrive::PairState;

/* ---------------------------------------------------------------------- */

PairMlipdrive::PairMlipdrive(LAMMPS* lmp): Pair(lmp), state(std::make_unique<PairState>()) {
    single_enable = 0;
    // restart files keep the pair_style and pair_coeff words (see write_restart)
    restartinfo = 1;
    one_coeff = 1;
    manybody_flag = 1;
    // the virial is computed from the pair vectors' gradients (and the cell's
    // along folded axes), not as sum(f . r): forces on ghost images alone miss
    // the cell term of a periodic model
    no_virial_fdotr_compute = 1;
    // the per-atom virial splits each pair's term half and half (see
    // mlipdrive_system.h); that is not a centroid decomposition of a many-body model
    centroidstressflag = CENTROID_NOTAVAIL;
}

PairMlipdrive::~PairMlipdrive() {
    if (allocated) {
        memory->destroy(setflag);
        memory->destroy(cutsq);
    }
}

/* ----------------------------------------------------------------------
   the KEYWORD VALUE pairs of pair_style: the preset first, wherever it is
   given; then the other keywords in order
------------------------------------------------------------------------- */

void PairMlipdrive::read_keywords(int narg, char** arg, const char* usage) {
    std::string preset = "default";
    for (int i = 1; i < narg; i += 2) {
        if (strcmp(arg[i], "settings") == 0) {
            preset = arg[i + 1];
        }
    }
    if (!mlipdrive::apply_preset(state->settings, preset)) {
        std::string presets;
        for (const char* name: mlipdrive::PRESETS) {
            presets += (presets.empty() ? "" : ", ") + std::string(name);
        }
        error->all(FLERR, "unknown settings preset '{}' in pair_style mlipdrive; use one of {}", preset, presets);
    }
    for (int i = 1; i < narg; i += 2) {
        const std::string key = arg[i];
        const std::string value = arg[i + 1];
        if (key == "device") {
            state->device_text = value;
        } else if (key == "extensions") {
            state->extensions = value;
        } else if (key == "mode") {
            if (value != "auto" && value != "ghosts" && value != "periodic") {
                error->all(FLERR, "expected auto, ghosts or periodic after 'mode' in pair_style mlipdrive, got '{}'", value);
            }
            state->mode = value;
        } else if (key == "remap_pairs") {
            // metatomic's keyword: fold the pairs of periodic images onto the local
            // atoms (our periodic layout, one rank) or keep every ghost (ghosts)
            bool remap = false;
            if (!mlipdrive::parse_bool("remap_pairs", value, remap).empty()) {
                error->all(FLERR, "expected on/off after 'remap_pairs' in pair_style mlipdrive, got '{}'", value);
            }
            state->mode = remap ? "auto" : "ghosts";
        } else if (key != "settings") {
            auto message = mlipdrive::set_setting(state->settings, key, value);
            if (!message.empty()) {
                error->all(FLERR, "pair_style mlipdrive: {}; expected {}", message, usage);
            }
        }
    }
}

/* ----------------------------------------------------------------------
   pair_style mlipdrive MODEL [KEYWORD VALUE]...
------------------------------------------------------------------------- */

void PairMlipdrive::settings(int narg, char** arg) {
    static const char* usage =
        "pair_style mlipdrive MODEL.pt [device cpu|cuda|cuda:N] [settings default|turbo] "
        "[extensions DIR] [mode auto|ghosts|periodic] [KEY VALUE]... with KEY one of the "
        "settings (dtype, threads, check_consistency, ...; see 'mlipdrive info MODEL.pt')";
    if (narg < 1) {
        error->all(FLERR, "missing model file; expected {}", usage);
    }
    if (narg % 2 != 1) {
        error->all(FLERR, "expected KEYWORD VALUE pairs after the model file, got {} word(s) "
                   "after '{}'; expected {}", narg - 1, arg[0], usage);
    }

    state = std::make_unique<PairState>();
    state->model_path = arg[0];

    read_keywords(narg, arg, usage);
    const auto out_of_range = mlipdrive::check_settings(state->settings);
    if (!out_of_range.empty()) {
        error->all(FLERR, "pair_style mlipdrive: {}", out_of_range);
    }

    if (!mlipdrive::lammps_unit_system(update->unit_style, state->units)) {
        error->all(FLERR, "pair_style mlipdrive does not support 'units {}'; {}", update->unit_style,
                   mlipdrive::LAMMPS_UNITS_ADVICE);
    }

    load(state->model_path);
    if (comm->me == 0) {
        state->model_digest = mlipdrive::file_digest(state->model_path);
    }
    // setflag and cutsq are allocated by pair_coeff: here the box (and so the
    // number of atom types) may not exist yet
    style_args.assign(arg, arg + narg);
}

/* ---------------------------------------------------------------------- */

namespace mlipdrive {

/// The classes of the model's long-range modules (torch-pme calculators), empty
/// when there is none (mlipdrive.loading.long_range_modules, the same rule).
static std::string long_range_modules(const torch::jit::Module& module) {
    std::vector<std::string> found;
    for (const auto& child: module.named_modules()) {
        auto name = child.value.type()->name()->qualifiedName();
        for (const auto* prefix: LONG_RANGE_MODULE_PREFIXES) {
            if (name.rfind(prefix, 0) == 0) {
                name = name.substr(std::strlen("__torch__."));
                if (std::find(found.begin(), found.end(), name) == found.end()) {
                    found.push_back(name);
                }
                break;
            }
        }
    }
    std::string text;
    for (const auto& name: found) {
        text += (text.empty() ? "" : ", ") + name;
    }
    return text;
}

/// Number of MPI ranks of `world` that run on this node.
static int ranks_on_node(MPI_Comm world, int* node_rank = nullptr) {
    MPI_Comm node;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int size = 1;
    MPI_Comm_size(node, &size);
    if (node_rank != nullptr) {
        MPI_Comm_rank(node, node_rank);
    }
    MPI_Comm_free(&node);
    return size;
}

/// The device the `device` keyword asks for, if the model and the machine allow
/// it; plain `cuda` goes round-robin over the node's GPUs by node-local rank.
static torch::Device choose_device(const std::string& text, const LoadedModel& model, MPI_Comm world) {
    auto parsed = parse_device(text);
    const auto& supported = model.capabilities->supported_devices;
    const std::string kind = parsed.first == torch::kCUDA ? "cuda" : "cpu";
    if (std::find(supported.begin(), supported.end(), kind) == supported.end()) {
        throw std::runtime_error("this model does not support device '" + kind + "' (it supports " +
                                 torch::str(supported) + "); choose another with 'device'");
    }
    if (parsed.first != torch::kCUDA) {
        return torch::Device(torch::kCPU);
    }
    if (!torch::cuda::is_available()) {
        throw std::runtime_error("'device " + text + "' asked for, but torch sees no CUDA GPU (CPU-only "
                                 "torch build, or no GPU on this node); use 'device cpu'");
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    int index = parsed.second;
    if (index < 0) {
        int node_rank = 0;
        ranks_on_node(world, &node_rank);
        index = node_rank % count;
    } else if (index >= count) {
        throw std::runtime_error("'device " + text + "' asked for, but torch sees " + std::to_string(count) +
                                 " GPU(s); use cuda:0 .. cuda:" + std::to_string(count - 1) +
                                 " or plain 'cuda' (one GPU per rank, round-robin)");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

/// Check that metatomic can convert the model's units to LAMMPS's; false when
/// the model declares no energy unit (its energies are then used unconverted).
static bool check_units(const LoadedModel& model, const UnitSystem& units, const std::string& energy_key) {
    const auto& caps = model.capabilities;
    metatomic_torch::unit_conversion_factor(caps->length_unit(), units.length);
    auto energy_unit = caps->outputs().at(energy_key)->unit();
    if (energy_unit.empty()) {
        return false;
    }
    metatomic_torch::unit_conversion_factor(energy_unit, units.energy);
    return true;
}

/// Cutoffs and interaction range in LAMMPS units, and the evaluation options.
static void read_ranges(PairState& s) {
    const auto& caps = s.model.capabilities;
    s.requests.clear();
    s.max_cutoff = 0.0;
    for (const auto& options: s.model.requested_neighbor_lists) {
        double cutoff = options->engine_cutoff(s.units.length);
        s.requests.push_back({options, cutoff});
        s.max_cutoff = std::max(s.max_cutoff, cutoff);
    }
    s.interaction_range = caps->engine_interaction_range(s.units.length);
    if (!(s.interaction_range >= 0.0)) {
        throw std::runtime_error("the model declares interaction_range " + std::to_string(caps->interaction_range) +
                                 "; re-export it with the range it needs (cutoff x message-passing layers)");
    }
    s.message_passing = !mlipdrive::prunes_ghost_pairs(s.interaction_range, s.max_cutoff);
    s.sum_atom_energies = s.settings.atom_energy_sum && caps->outputs().at(s.outputs.energy)->sample_kind() == "atom";
}

/// Settings that mean something else (or nothing) inside LAMMPS, for the log.
static void add_lammps_notes(PairState& s) {
    s.model.notes.insert(s.model.notes.end(), s.outputs.notes.begin(), s.outputs.notes.end());
    s.model.notes.push_back("skin: not used, LAMMPS's 'neighbor' command sets the skin");
    if (s.settings.fixed_composition) {
        s.model.notes.push_back("fixed_composition: not used, atom types are read at every step "
                                "(fix atom/swap and others change them without a neighbour-list rebuild)");
    }
}

/// The outputs a step uses, the variants the model offers and the checks, for the log.
static std::string describe_outputs(const PairState& s) {
    const auto& chosen = s.outputs;
    std::string text = fmt::format("mlipdrive: energy output '{}' (variants: {})\n", chosen.energy,
                                   describe_variants(s.model.capabilities, "energy"));
    if (!chosen.uncertainty.empty()) {
        text += fmt::format("mlipdrive: uncertainty check on '{}': {} above {:g} eV/atom\n", chosen.uncertainty,
                            s.settings.uncertainty_action == "stop" ? "stop" : "warn", s.settings.uncertainty_threshold);
    }
    if (s.settings.non_conservative != "off") {
        const auto from = [](const std::string& head) { return head.empty() ? std::string("the energy's gradients")
                                                                           : "'" + head + "'"; };
        text += fmt::format("mlipdrive: non_conservative {}: forces from {}, stress from {}{}\n",
                            s.settings.non_conservative, from(chosen.non_conservative_forces),
                            from(chosen.non_conservative_stress),
                            chosen.non_conservative_forces.empty() ? "" : " (not energy-conserving: use a thermostat)");
    }
    if (s.settings.scale != 1.0) {
        text += fmt::format("mlipdrive: energy, forces and virial scaled by {:g}\n", s.settings.scale);
    }
    return text;
}

/// What was loaded and how it runs, as the log shows it.
static std::string describe(const PairState& s, const std::string& path, const char* unit_style) {
    const auto& caps = s.model.capabilities;
    std::string text = fmt::format("mlipdrive: model {} ('{}')\n", path, s.model.name);
    text += fmt::format("mlipdrive: device {}, dtype {}, torch threads {}, units {} ({}, {})\n",
                        s.model.device.str(), caps->dtype(), torch::get_num_threads(), unit_style,
                        s.units.length, s.units.energy);
    text += fmt::format("mlipdrive: graph executor optimisation {}\n",
                        torch::jit::getGraphExecutorOptimize() ? "on" : "off");
    text += fmt::format("mlipdrive: interaction range {:g} {}{}\n", s.interaction_range, s.units.length,
                        s.message_passing ? " (message passing)" : "");
    for (const auto& request: s.requests) {
        text += fmt::format("mlipdrive: neighbour list {}, cutoff {:g}, strict={}\n",
                            request.options->full_list() ? "full" : "half", request.cutoff,
                            request.options->strict() ? "True" : "False");
    }
    text += describe_outputs(s);
    for (const auto& note: s.model.notes) {
        text += "mlipdrive: " + note + "\n";
    }
    text += "mlipdrive: settings\n";
    for (const auto& line: setting_lines(s.settings)) {
        text += fmt::format("  {:18} {}\n", line.first, line.second);
    }
    return text;
}

}  // namespace mlipdrive

void PairMlipdrive::load(const std::string& path) {
    auto& s = *state;
    bool energy_unit = true;
    try {
        s.model = mlipdrive::load_model(path, s.extensions);
        mlipdrive::provide_extension_autograd();
        auto device = mlipdrive::choose_device(s.device_text, s.model, world);
        const int threads = mlipdrive::torch_threads(s.settings.threads, mlipdrive::ranks_on_node(world));
        mlipdrive::apply_settings(s.model, s.settings, device, threads);
        s.outputs = mlipdrive::choose_outputs(s.model.capabilities, s.settings, s.model.name.empty() ? "model" : s.model.name);
        mlipdrive::add_lammps_notes(s);
        mlipdrive::read_ranges(s);
    } catch (const std::exception& e) {
        error->all(FLERR, "pair_style mlipdrive: {}", mlipdrive::error_text(e));
    }
    try {
        energy_unit = mlipdrive::check_units(s.model, s.units, s.outputs.energy);
    } catch (const std::exception& e) {
        error->all(FLERR, "pair_style mlipdrive: cannot convert the model's units to 'units {}': {}",
                   update->unit_style, mlipdrive::first_line(e.what()));
    }
    if (comm->me == 0) {
        if (!energy_unit) {
            error->warning(FLERR, "the model declares no energy unit: its energies are used as {} unconverted",
                           s.units.energy);
        }
        utils::logmesg(lmp, mlipdrive::describe(s, path, update->unit_style));
    }
}

/* ---------------------------------------------------------------------- */

void PairMlipdrive::allocate() {
    allocated = 1;
    const int n = atom->ntypes;
    memory->create(setflag, n + 1, n + 1, "pair:setflag");
    memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
    for (int i = 1; i <= n; i++) {
        for (int j = 1; j <= n; j++) {
            setflag[i][j] = 0;
        }
    }
}

/* ----------------------------------------------------------------------
   the atomic number pair_coeff gives LAMMPS type `type` (-1 for NULL)
------------------------------------------------------------------------- */

int PairMlipdrive::element_of_type(int type, const std::string& text) {
    if (text == "NULL") {
        return -1;
    }
    const int z = mlipdrive::atomic_number(text);
    if (z < 0) {
        error->all(FLERR, "pair_coeff: '{}' for atom type {} is neither an element symbol nor "
                   "an atomic number; write e.g. Cu or 29 (NULL for types left to another pair style)",
                   text, type);
    }
    const auto& known = state->model.capabilities->atomic_types;
    if (std::find(known.begin(), known.end(), z) == known.end()) {
        std::string known_text;
        for (auto k: known) {
            known_text += (known_text.empty() ? "" : ", ") + mlipdrive::element_name(static_cast<int>(k));
        }
        error->all(FLERR, "pair_coeff: element {} for atom type {} is not known by model '{}', "
                   "which knows {}; map the type to one of these, use a model trained for it, or "
                   "give NULL and another style under pair_style hybrid/overlay",
                   mlipdrive::element_name(z), type, state->model.name, known_text);
    }
    return z;
}

/* ----------------------------------------------------------------------
   pair_coeff * * Cu Al ...   (one element per atom type; NULL under hybrid)
------------------------------------------------------------------------- */

void PairMlipdrive::coeff(int narg, char** arg) {
    if (!allocated) {
        allocate();
    }
    const int ntypes = atom->ntypes;
    std::string example = "pair_coeff * *";
    for (int z: state->model.capabilities->atomic_types) {
        if (static_cast<int>(example.size()) > 60) {
            break;
        }
        example += ' ';
        example += z < mlipdrive::N_ELEMENTS ? std::string(mlipdrive::ELEMENTS[z]) : std::to_string(z);
    }
    if (narg < 2 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0) {
        error->all(FLERR, "pair_coeff for mlipdrive must start with '* *' and list one element "
                   "(symbol or atomic number, NULL to leave a type to another style) per atom type, "
                   "e.g. '{}'", example);
    }
    if (narg - 2 != ntypes) {
        error->all(FLERR, "pair_coeff * * for mlipdrive needs one element per atom type: this "
                   "system has {} atom type(s), got {} element(s); e.g. '{}'", ntypes, narg - 2, example);
    }

    state->atomic_numbers.assign(ntypes + 1, -1);
    for (int type = 1; type <= ntypes; type++) {
        state->atomic_numbers[type] = element_of_type(type, arg[type + 1]);
    }
    coeff_args.assign(arg, arg + narg);

    int count = 0;
    for (int i = 1; i <= ntypes; i++) {
        for (int j = 1; j <= ntypes; j++) {
            bool ours = state->atomic_numbers[i] >= 0 && state->atomic_numbers[j] >= 0;
            setflag[i][j] = ours ? 1 : 0;
            count += ours ? 1 : 0;
        }
    }
    if (count == 0) {
        error->all(FLERR, "pair_coeff: every atom type is NULL; give at least one element");
    }

    if (comm->me == 0) {
        std::string text = "mlipdrive: LAMMPS type -> element\n";
        for (int type = 1; type <= ntypes; type++) {
            int z = state->atomic_numbers[type];
            text += fmt::format("  {:4d} -> {}\n", type, z < 0 ? "NULL (other pair style)" : mlipdrive::element_name(z));
        }
        utils::logmesg(lmp, text);
    }
}

/* ---------------------------------------------------------------------- */

void PairMlipdrive::init_style() {
    auto& s = *state;
    if (s.atomic_numbers.empty()) {
        error->all(FLERR, "pair_style mlipdrive needs 'pair_coeff * * ELEMENT...' before the run");
    }
    check_run_setup();
    choose_layout();

    // LAMMPS's own full list; with the ghosts' own pairs when ghosts are kept
    // and the model may use their pairs (message passing)
#if !MLIPDRIVE_LAMMPS_HAS_ADD_REQUEST
    // older LAMMPS (29 Sep 2021 here) take the request as fields, not flags
    const int request = neighbor->request(this, instance_me);
    neighbor->requests[request]->half = 0;
    neighbor->requests[request]->full = 1;
    neighbor->requests[request]->ghost = s.layout.needs_ghost_pairs() ? 1 : 0;
#else
    int flags = NeighConst::REQ_FULL;
    if (s.layout.needs_ghost_pairs()) {
        flags |= NeighConst::REQ_GHOST;
    }
    neighbor->add_request(this, flags);
#endif
    check_comm_cutoff();

    s.adaptor = std::make_unique<mlipdrive::SystemAdaptor>(
        lmp, s.requests, s.layout, s.model.device, s.model.dtype
    );
    s.fresh.reset();
    if (s.settings.verify) {
        // its own chain of the copies of each ID, not LAMMPS's atom map
        s.fresh = std::make_unique<mlipdrive::SystemAdaptor>(
            lmp, s.requests, s.layout, s.model.device, s.model.dtype, false
        );
    }
    s.last_list = nullptr;
    const bool heap_kept = mlipdrive::keep_large_allocations();
    if (comm->me == 0) {
        utils::logmesg(lmp, "mlipdrive: {} layout ({}), {} MPI rank(s)\n", s.layout.name(),
                       s.layout.description(), comm->nprocs);
        if (s.settings.verify) {
            utils::logmesg(lmp, "mlipdrive: verify on: at every step the System is also built from scratch "
                           "and compared with the one kept from earlier steps\n");
        }
        utils::logmesg(lmp, "mlipdrive: freed memory {} in the heap between steps{}\n",
                       heap_kept ? "stays" : "does not stay",
                       heap_kept ? " (faster above ~1e5 atoms, higher peak RSS; MALLOC_MMAP_THRESHOLD_ overrides)"
                                 : " (MALLOC_MMAP_THRESHOLD_ is set)");
    }
}

/* ----------------------------------------------------------------------
   what the run must have for this pair style
------------------------------------------------------------------------- */

void PairMlipdrive::check_run_setup() {
    auto& s = *state;
    // newton pair on: the model gives forces on ghost atoms, and LAMMPS's reverse
    // communication adds them to their owners; with newton off it would drop them
    if (force->newton_pair == 0) {
        error->all(FLERR, "pair_style mlipdrive requires newton pair on (forces on ghost atoms are "
                   "sent back to their owners); remove 'newton off' or write 'newton on'");
    }
    if (domain->dimension != 3) {
        error->all(FLERR, "pair_style mlipdrive evaluates three-dimensional models: 'dimension {}' would "
                   "feed the model a periodic stack of layers and drop the z forces; use dimension 3 "
                   "(a thin periodic slab, or boundary p p f with a layer of atoms)", domain->dimension);
    }
    if (atom->tag_enable == 0) {
        error->all(FLERR, "pair_style mlipdrive needs atom IDs; remove 'atom_modify id no'");
    }
    mlipdrive::UnitSystem units;
    if (!mlipdrive::lammps_unit_system(update->unit_style, units) || units.length != s.units.length ||
        units.energy != s.units.energy) {
        error->all(FLERR, "units changed to '{}' after pair_style mlipdrive; give 'units' before pair_style "
                   "({})", update->unit_style, mlipdrive::LAMMPS_UNITS_ADVICE);
    }
}

/* ----------------------------------------------------------------------
   the layout of the System (see mlipdrive_system.h): on one rank every
   periodic axis folds (periodic); on several, the periodic axes the processor
   grid does not cut fold and the other ghosts are kept (mixed, or ghosts when
   none folds); 'mode ghosts' folds nothing
------------------------------------------------------------------------- */

void PairMlipdrive::choose_layout() {
    auto& s = *state;
    const bool infinite = std::isinf(s.interaction_range);
    if (s.mode == "periodic" && comm->nprocs > 1) {
        error->all(FLERR, "pair_style mlipdrive 'mode periodic' works on one MPI rank only, this run has "
                   "{}; use 'mode ghosts' (or auto) or run on one rank", comm->nprocs);
    }
    if (infinite && comm->nprocs > 1) {
        error->all(FLERR, "this model has an infinite interaction range (long-range terms): every rank "
                   "would need every atom as a ghost, so it cannot be split over {} MPI ranks; run it on "
                   "one rank (mpirun -np 1 or plain lmp)", comm->nprocs);
    }
    if (infinite && s.mode == "ghosts") {
        error->all(FLERR, "this model has an infinite interaction range: 'mode ghosts' cannot hold it; "
                   "use 'mode periodic' (or auto) on one MPI rank");
    }
    refuse_long_range_split();
    if (s.requests.empty()) {
        error->all(FLERR, "pair_style mlipdrive: {}",
                   mlipdrive::no_neighbor_lists_message(s.model.name.empty() ? "model" : s.model.name));
    }
    if (!std::isfinite(s.max_cutoff) || s.max_cutoff <= 0.0) {
        error->all(FLERR, "the model's neighbour-list cutoff is {}; LAMMPS needs a finite positive one",
                   s.max_cutoff);
    }
    const bool one_rank = comm->nprocs == 1;
    // a brick decomposition: an axis with one processor spans the whole box on every rank
    const bool brick = comm->style == 0 && comm->layout != Comm::LAYOUT_TILED;
    const int periodic[3] = {domain->xperiodic, domain->yperiodic, domain->zperiodic};
    s.layout = mlipdrive::Layout();
    s.layout.keeps_ghosts = !one_rank || s.mode == "ghosts";
    for (int axis = 0; axis < 3 && s.mode != "ghosts"; axis++) {
        s.layout.folded[axis] = periodic[axis] != 0 && (one_rank || (brick && comm->procgrid[axis] == 1));
    }
    // exact only without message passing (mlipdrive_system.h, "Ghost-ghost pairs")
    s.layout.prunes_ghost_pairs = s.layout.keeps_ghosts && !s.message_passing;
}

/* ----------------------------------------------------------------------
   ghost shell: the model's interaction range plus the neighbour skin, so that
   ghosts stay complete until the next rebuild
------------------------------------------------------------------------- */

void PairMlipdrive::check_comm_cutoff() {
    auto& s = *state;
    if (!s.layout.keeps_ghosts || !s.message_passing) {
        // the periodic layout uses ghosts only as images in pairs; otherwise
        // LAMMPS's default ghost cutoff (largest cutoff + skin) is the range + skin
        return;
    }
    const double needed = s.interaction_range + neighbor->skin;
    if (comm->mode != Comm::SINGLE) {
        error->all(FLERR, "pair_style mlipdrive needs 'comm_modify mode single' (it sets the ghost "
                   "cutoff to {:g}, the model's interaction range + skin)", needed);
    }
    const double user = comm->cutghostuser;
    const bool user_set = user > 0.0 && user != comm_cutoff_set;
    if (user_set && user < needed) {
        error->all(FLERR, "comm_modify cutoff {:g} is shorter than the {:g} this model needs (interaction "
                   "range {:g} = cutoff x message-passing layers, + neighbor skin {:g}); remove 'comm_modify "
                   "cutoff' (pair_style mlipdrive sets it) or give 'comm_modify cutoff {:g}' or more",
                   user, needed, s.interaction_range, neighbor->skin, needed);
    }
    if (user < needed) {
        comm->cutghostuser = needed;
        comm_cutoff_set = needed;
        if (comm->me == 0) {
            utils::logmesg(lmp, "mlipdrive: communication cutoff set to {:g} (interaction range {:g} + "
                           "skin {:g})\n", needed, s.interaction_range, neighbor->skin);
        }
    }
}

/* ---------------------------------------------------------------------- */

double PairMlipdrive::init_one(int, int) {
    return state->max_cutoff;
}

void PairMlipdrive::init_list(int, NeighList* ptr) {
    list = ptr;
}

/* ---------------------------------------------------------------------- */

namespace mlipdrive {

/// Where one evaluation's forces and virials go in LAMMPS.
struct Tally {
    double** f = nullptr;
    /// per-atom virial (nullptr unless asked)
    double** vatom = nullptr;
    bool global_virial = false;
    /// local + ghost atoms: the length of f
    int n_all = 0;
    /// kept between steps (PairState): room for one force per atom
    std::vector<double>* scratch = nullptr;
    double virial[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};

    bool need_virial() const { return global_virial || vatom != nullptr; }

    /// a virial term shared half and half by atoms a and b (a == b: all to a)
    void add_virial(int a, int b, const double v[6]) {
        for (int k = 0; k < 6 && global_virial; k++) {
            virial[k] += v[k];
        }
        for (int k = 0; k < 6 && vatom != nullptr; k++) {
            vatom[a][k] += 0.5 * v[k];
            vatom[b][k] += 0.5 * v[k];
        }
    }
};

/// Voigt-ordered symmetric part of the outer product u (x) w.
static void symmetric_outer(const double* u, const double* w, double scale, double v[6]) {
    v[0] = scale * u[0] * w[0];
    v[1] = scale * u[1] * w[1];
    v[2] = scale * u[2] * w[2];
    v[3] = scale * 0.5 * (u[0] * w[1] + u[1] * w[0]);
    v[4] = scale * 0.5 * (u[0] * w[2] + u[2] * w[0]);
    v[5] = scale * 0.5 * (u[1] * w[2] + u[2] * w[1]);
}

static const char* const NON_FINITE_FORCES = "the model returned a non-finite energy or forces (NaN/inf forces)";

/// One block's pairs: r = x_b - x_a and g = dE/dr, so f_a += g and f_b -= g;
/// the virial -dE/dstrain (LAMMPS's sign, sum r (x) f) gets -r (x) g from each
/// pair, r recomputed from LAMMPS's coordinates. One pass over the gradient in
/// the model's dtype, nothing allocated; false if some g is not finite.
template <typename T, bool ATOM_VIRIAL>
static bool scatter_pairs(const int32_t* atoms, int64_t n_pairs, const T* g, double* f, double** x, Tally& tally) {
    // LAMMPS keeps x and f as contiguous (nmax, 3) blocks behind x[0] and f[0]
    const double* x0 = x[0];
    // NaN and inf survive a sum; finite gradients cannot overflow it in double
    double check = 0.0;
    // pairs come grouped by their first atom: its force is summed here and
    // added once per group
    int64_t current = -1;
    double sum[3] = {0.0, 0.0, 0.0};
    for (int64_t p = 0; p < n_pairs; p++) {
        if (p + 16 < n_pairs) {
            // the second atoms' forces are spread over f: ask for them early
            __builtin_prefetch(f + 3 * static_cast<int64_t>(atoms[2 * p + 33]), 1);
        }
        const int64_t a = 3 * static_cast<int64_t>(atoms[2 * p]);
        const int64_t b = 3 * static_cast<int64_t>(atoms[2 * p + 1]);
        const double g0 = static_cast<double>(g[3 * p]);
        const double g1 = static_cast<double>(g[3 * p + 1]);
        const double g2 = static_cast<double>(g[3 * p + 2]);
        check += g0 + g1 + g2;
        if (a != current) {
            if (current >= 0) {
                f[current] += sum[0];
                f[current + 1] += sum[1];
                f[current + 2] += sum[2];
            }
            current = a;
            sum[0] = sum[1] = sum[2] = 0.0;
        }
        sum[0] += g0;
        sum[1] += g1;
        sum[2] += g2;
        f[b] -= g0;
        f[b + 1] -= g1;
        f[b + 2] -= g2;
        if (ATOM_VIRIAL) {
            const double r[3] = {x0[b] - x0[a], x0[b + 1] - x0[a + 1], x0[b + 2] - x0[a + 2]};
            const double gp[3] = {g0, g1, g2};
            double v[6];
            symmetric_outer(r, gp, -1.0, v);
            tally.add_virial(static_cast<int>(a / 3), static_cast<int>(b / 3), v);
        }
    }
    if (current >= 0) {
        f[current] += sum[0];
        f[current + 1] += sum[1];
        f[current + 2] += sum[2];
    }
    return std::isfinite(check);
}

/// Pairs when only the global virial is asked: their forces F go to a scratch
/// array, the virial is sum_i x_i (x) F_i over the LAMMPS atoms (ghost images
/// included), which equals -sum r (x) g over the pairs without reading x once
/// per pair; then F joins f.
template <typename T>
static bool scatter_pairs_global_virial(const int32_t* atoms, int64_t n_pairs, const T* g, double** x,
                                        Tally& tally) {
    auto& forces = *tally.scratch;
    const int64_t n_values = 3 * static_cast<int64_t>(tally.n_all);
    forces.assign(n_values, 0.0);
    const bool finite = scatter_pairs<T, false>(atoms, n_pairs, g, forces.data(), x, tally);
    const double* x0 = x[0];
    double* f = tally.f[0];
    double v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t i = 0; i < n_values; i += 3) {
        const double* xi = x0 + i;
        const double* fi = forces.data() + i;
        v[0] += xi[0] * fi[0];
        v[1] += xi[1] * fi[1];
        v[2] += xi[2] * fi[2];
        v[3] += 0.5 * (xi[0] * fi[1] + xi[1] * fi[0]);
        v[4] += 0.5 * (xi[0] * fi[2] + xi[2] * fi[0]);
        v[5] += 0.5 * (xi[1] * fi[2] + xi[2] * fi[1]);
        f[i] += fi[0];
        f[i + 1] += fi[1];
        f[i + 2] += fi[2];
    }
    for (int k = 0; k < 6; k++) {
        tally.virial[k] += v[k];
    }
    return finite;
}

template <typename T>
static bool scatter_pairs(const int32_t* atoms, int64_t n_pairs, const T* g, double** x, Tally& tally) {
    if (tally.vatom != nullptr) {
        // per-atom virials need each pair's own term (and give the global one too)
        return scatter_pairs<T, true>(atoms, n_pairs, g, tally.f[0], x, tally);
    }
    if (tally.global_virial) {
        return scatter_pairs_global_virial(atoms, n_pairs, g, x, tally);
    }
    return scatter_pairs<T, false>(atoms, n_pairs, g, tally.f[0], x, tally);
}

/// The gradient of one pair block (CPU, contiguous, the model's dtype) into forces and virial.
static void scatter_pair_gradient(const PairBlock& block, const torch::Tensor& gradient, double** x,
                                  Tally& tally) {
    const int64_t n_pairs = block.size();
    if (!gradient.defined() || n_pairs == 0) {
        return;
    }
    const int32_t* atoms = block.atoms.data_ptr<int32_t>();
    bool finite = true;
    if (gradient.scalar_type() == torch::kFloat32) {
        finite = scatter_pairs(atoms, n_pairs, gradient.data_ptr<float>(), x, tally);
    } else {
        auto g = gradient.to(torch::kFloat64);
        finite = scatter_pairs(atoms, n_pairs, g.data_ptr<double>(), x, tally);
    }
    if (!finite) {
        throw std::runtime_error(NON_FINITE_FORCES);
    }
}

/// Direct use of the positions by the model (usually none): f = -dE/dx, virial x (x) f.
static void scatter_position_gradient(const SystemAdaptor& adaptor, const torch::Tensor& gradient,
                                      double** x, Tally& tally) {
    if (!gradient.defined()) {
        return;
    }
    auto g64 = gradient.to(torch::kFloat64).contiguous();
    if (!torch::isfinite(g64).all().item<bool>()) {
        throw std::runtime_error(NON_FINITE_FORCES);
    }
    const double* g = g64.data_ptr<double>();
    for (size_t i = 0; i < adaptor.lammps_index.size(); i++) {
        const int a = adaptor.lammps_index[i];
        const double fi[3] = {-g[3 * i], -g[3 * i + 1], -g[3 * i + 2]};
        for (int k = 0; k < 3; k++) {
            tally.f[a][k] += fi[k];
        }
        if (tally.need_virial()) {
            double v[6];
            symmetric_outer(x[a], fi, 1.0, v);
            tally.add_virial(a, a, v);
        }
    }
}

/// Direct use of the cell (folded axes): -cell^T dE/dcell. It belongs to no
/// atom in particular; per-atom virials get an equal share, so that they still
/// sum to the global virial.
static void add_cell_virial(const SystemAdaptor& adaptor, const torch::Tensor& gradient, Tally& tally) {
    if (!gradient.defined() || !tally.need_virial()) {
        return;
    }
    if (!torch::isfinite(gradient).all().item<bool>()) {
        throw std::runtime_error(NON_FINITE_FORCES);
    }
    auto w = -torch::matmul(adaptor.cell.detach().to(torch::kCPU).transpose(0, 1), gradient.to(torch::kFloat64));
    auto wa = w.accessor<double, 2>();
    const double v[6] = {
        wa[0][0], wa[1][1], wa[2][2],
        0.5 * (wa[0][1] + wa[1][0]), 0.5 * (wa[0][2] + wa[2][0]), 0.5 * (wa[1][2] + wa[2][1]),
    };
    for (int k = 0; k < 6 && tally.global_virial; k++) {
        tally.virial[k] += v[k];
    }
    const double share = 1.0 / static_cast<double>(adaptor.n_local);
    for (int i = 0; i < adaptor.n_local && tally.vatom != nullptr; i++) {
        const int a = adaptor.lammps_index[i];
        for (int k = 0; k < 6; k++) {
            tally.vatom[a][k] += share * v[k];
        }
    }
}

/// The model's energies of one step: per System atom (or one total) and,
/// for per-atom energies, the System index of each value.
struct Energies {
    torch::Tensor values;
    torch::Tensor atoms;
};

/// The model's outputs for `system`, as `request` asks (one forward call).
static c10::Dict<c10::IValue, c10::IValue> run_model(PairState& s, const metatomic_torch::System& system,
                                                      const Request& request) {
    auto options = evaluation_options(s, request);
    options->set_selected_atoms(s.adaptor->selected_atoms);
    auto result = s.model.module.forward({
        std::vector<metatomic_torch::System>{system},
        options,
        s.settings.check_consistency,
    });
    return result.toGenericDict();
}

static metatensor_torch::TensorBlock block_of(const c10::Dict<c10::IValue, c10::IValue>& outputs, const std::string& key) {
    auto map = outputs.at(key).toCustomClass<metatensor_torch::TensorMapHolder>();
    return metatensor_torch::TensorMapHolder::block_by_id(map, 0);
}

static Energies energies_of(const metatensor_torch::TensorBlock& block, bool per_atom) {
    Energies energies{block->values(), torch::Tensor()};
    if (per_atom) {
        auto samples = block->samples()->values();
        energies.atoms = samples.index({torch::indexing::Slice(), -1}).to(torch::kCPU).to(torch::kInt64).contiguous();
    }
    return energies;
}

/// Gradients of `total` with respect to every pair block, the positions and
/// (when it is a leaf) the cell: on the CPU, contiguous, in the leaves' dtypes.
static std::vector<torch::Tensor> differentiate(const SystemAdaptor& adaptor, const torch::Tensor& total) {
    std::vector<torch::Tensor> inputs;
    for (const auto& block: adaptor.blocks) {
        inputs.push_back(block.vectors);
    }
    inputs.push_back(adaptor.positions);
    if (adaptor.cell.requires_grad()) {
        inputs.push_back(adaptor.cell);
    }
    mlipdrive::MissingAutogradCheck missing_autograd;
    auto gradients = torch::autograd::grad({total}, inputs, {}, false, false, /*allow_unused=*/true);
    missing_autograd.throw_if_missing();
    // kept in the model's dtype: the scatter reads them once (and checks that
    // they are finite) without a float64 copy
    for (auto& gradient: gradients) {
        if (gradient.defined()) {
            gradient = gradient.detach().to(torch::kCPU).contiguous();
        }
    }
    return gradients;
}

/// One step's results, scaled by the `scale` setting.
struct Evaluation {
    /// the model's energies (undefined when no energy was asked for)
    Energies energies;
    double energy = 0.0;
    /// conservative: gradients of the energy (see differentiate)
    std::vector<torch::Tensor> gradients;
    /// non-conservative: forces on the selected atoms, and the virial
    /// (3 x 3 float64, undefined without a stress)
    PerAtomValues forces;
    torch::Tensor virial;
    /// per-atom energy uncertainty (eV), where the check is on
    PerAtomValues uncertainty;
};

/// The value of the total energy, which must be finite.
static double energy_value(const torch::Tensor& total) {
    const double energy = total.detach().to(torch::kCPU).to(torch::kFloat64).item<double>();
    if (!std::isfinite(energy)) {
        throw std::runtime_error("the model returned a non-finite energy or forces (NaN/inf energy)");
    }
    return energy;
}

static void read_uncertainty(const PairState& s, const c10::Dict<c10::IValue, c10::IValue>& outputs,
                             Evaluation& evaluation) {
    if (!s.outputs.uncertainty.empty()) {
        evaluation.uncertainty = per_atom_values(block_of(outputs, s.outputs.uncertainty), 1, s.outputs.uncertainty,
                                                 uncertainty_advice_message());
    }
}

/// Forward and backward pass: energies and their gradients.
static Evaluation evaluate_conservative(PairState& s, bool per_atom) {
    auto start = std::chrono::steady_clock::now();
    Request request;
    request.per_atom_energy = per_atom;
    auto outputs = run_model(s, s.adaptor->system, request);
    Evaluation evaluation;
    evaluation.energies = energies_of(block_of(outputs, s.outputs.energy), per_atom);
    read_uncertainty(s, outputs, evaluation);
    auto total = evaluation.energies.values.sum();
    s.time_forward += seconds_since(start);

    start = std::chrono::steady_clock::now();
    evaluation.gradients = differentiate(*s.adaptor, total);
    evaluation.energy = energy_value(total);
    s.time_backward += seconds_since(start);

    const double scale = s.settings.scale;
    if (scale != 1.0) {
        evaluation.energy *= scale;
        evaluation.energies.values = evaluation.energies.values.detach() * scale;
        for (auto& gradient: evaluation.gradients) {
            if (gradient.defined()) {
                gradient.mul_(scale);
            }
        }
    }
    return evaluation;
}

/// The heads' forces (request.forces) and stress as a virial (request.stress),
/// scaled; `cell` gives the volume.
static void read_heads(const PairState& s, const c10::Dict<c10::IValue, c10::IValue>& outputs, const Request& request,
                       const torch::Tensor& cell, Evaluation& evaluation) {
    const double scale = s.settings.scale;
    if (request.forces) {
        evaluation.forces = per_atom_values(block_of(outputs, s.outputs.non_conservative_forces), 3,
                                           s.outputs.non_conservative_forces, head_advice_message());
        evaluation.forces.values.mul_(scale);
        if (!torch::isfinite(evaluation.forces.values).all().item<bool>()) {
            throw std::runtime_error("the model returned non-finite non-conservative forces");
        }
    }
    if (request.stress) {
        auto stress = block_of(outputs, s.outputs.non_conservative_stress)->values();
        const std::vector<int64_t> expected = {1, 3, 3, 1};
        if (stress.sizes().vec() != expected) {
            throw std::runtime_error(output_shape_message(
                s.outputs.non_conservative_stress, shape_text(stress.sizes().vec()), shape_text(expected),
                "one 3x3 matrix per structure", head_advice_message()
            ));
        }
        stress = stress.detach().to(torch::kCPU).to(torch::kFloat64).reshape({3, 3});
        // virial = -stress * volume (LAMMPS's sign, sum r (x) f)
        const double volume = std::abs(torch::det(cell.to(torch::kCPU).to(torch::kFloat64)).item<double>());
        evaluation.virial = -scale * volume * stress;
    }
}

/// One forward pass on `system` with forces and/or stress from the model's heads
/// (non_conservative on, forces or stress); with `gradients`, also the energy's
/// gradients, for what the heads do not give (forces, or the virial).
static Evaluation evaluate_heads(PairState& s, const Request& request, const metatomic_torch::System& system,
                                 const torch::Tensor& cell, bool gradients) {
    auto start = std::chrono::steady_clock::now();
    auto outputs = run_model(s, system, request);
    Evaluation evaluation;
    torch::Tensor total;
    if (request.energy) {
        evaluation.energies = energies_of(block_of(outputs, s.outputs.energy), request.per_atom_energy);
        total = evaluation.energies.values.sum();
    }
    read_uncertainty(s, outputs, evaluation);
    read_heads(s, outputs, request, cell, evaluation);
    s.time_forward += seconds_since(start);
    if (gradients) {
        start = std::chrono::steady_clock::now();
        evaluation.gradients = differentiate(*s.adaptor, total);
        for (auto& gradient: evaluation.gradients) {
            if (gradient.defined() && s.settings.scale != 1.0) {
                gradient.mul_(s.settings.scale);
            }
        }
        s.time_backward += seconds_since(start);
    }
    if (request.energy) {
        evaluation.energy = s.settings.scale * energy_value(total);
        evaluation.energies.values = evaluation.energies.values.detach() * s.settings.scale;
    }
    return evaluation;
}

}  // namespace mlipdrive

/* ----------------------------------------------------------------------
   one step: LAMMPS frame -> System, forward, backward, forces and virial back
------------------------------------------------------------------------- */

bool PairMlipdrive::list_rebuilt() {
    // The signals LAMMPS guarantees (ARCHITECTURE.md, "What the plugin keeps
    // between steps"): every setup()/setup_minimal() (run, rerun frames, minimize,
    // NEB stages, PRD/TAD/temper events) runs with update->setupflag set, builds
    // the list (or, with 'pre no', keeps it) and resets neighbor->ncalls; every
    // other build increments ncalls and stamps neighbor->lastcall with the step.
    auto& s = *state;
    const bool rebuilt = update->setupflag != 0 || neighbor->ncalls != s.last_neighbor_calls ||
                         neighbor->lastcall != s.last_build_step || list != s.last_list ||
                         atom->nlocal != s.last_nlocal || atom->nghost != s.last_nghost;
    s.last_neighbor_calls = neighbor->ncalls;
    s.last_build_step = neighbor->lastcall;
    s.last_list = list;
    s.last_nlocal = atom->nlocal;
    s.last_nghost = atom->nghost;
    return rebuilt;
}

std::string PairMlipdrive::verify_system() {
    auto& s = *state;
    const auto start = std::chrono::steady_clock::now();
    s.fresh->update(list, true, s.atomic_numbers, false);
    auto difference = mlipdrive::first_difference(*s.adaptor, *s.fresh, lmp);
    s.fresh->system = metatomic_torch::System();
    s.time_verify += mlipdrive::seconds_since(start);
    return difference;
}

void PairMlipdrive::compute(int eflag, int vflag) {
    ev_init(eflag, vflag);
    auto& s = *state;
    const bool head_stress = mlipdrive::stress_from_head(s.settings);
    if (s.settings.non_conservative != "off") {
        check_head_virial();
    }
    if (eflag_atom && s.model.capabilities->outputs().at(s.outputs.energy)->sample_kind() != "atom") {
        error->all(FLERR, "pair_style mlipdrive: {}", mlipdrive::no_per_atom_energy_message(
            s.model.name.empty() ? "model" : s.model.name, s.outputs.energy));
    }
    mlipdrive::Tally tally;
    tally.f = atom->f;
    tally.vatom = vflag_atom ? vatom : nullptr;
    tally.global_virial = vflag_global != 0;
    tally.n_all = atom->nlocal + atom->nghost;
    tally.scratch = &s.scratch_forces;
    mlipdrive::Evaluation evaluation;
    std::string difference;
    try {
        auto start = std::chrono::steady_clock::now();
        // the cell gradient carries the virial of a periodic model's own use of the cell
        s.adaptor->update(list, list_rebuilt(), s.atomic_numbers,
                          !head_stress && s.layout.any_folded() && tally.need_virial());
        s.time_system += mlipdrive::seconds_since(start);
        difference = s.fresh ? verify_system() : std::string();
        if (difference.empty()) {
            evaluation = evaluate(tally.need_virial());
            start = std::chrono::steady_clock::now();
            store(evaluation, tally);
            s.time_store += mlipdrive::seconds_since(start);
        }
    } catch (const std::exception& e) {
        error->one(FLERR, "pair_style mlipdrive on rank {} at step {}: {}", comm->me, update->ntimestep,
                   evaluation_failure(e));
    }
    // outside the try: LAMMPS's errors are exceptions
    if (!difference.empty()) {
        error->one(FLERR, "pair_style mlipdrive verify: at step {} on rank {}, the System kept from earlier "
                   "steps differs from one built from scratch: {}. This is a fault of mlipdrive's caches: "
                   "please report it with this input ('verify off' runs without the check)",
                   update->ntimestep, comm->me, difference);
    }
    check_uncertainty(evaluation);
}

/// a model with long-range terms needs the whole periodic structure: no split layout
void PairMlipdrive::refuse_long_range_split() {
    const auto& s = *state;
    if (comm->nprocs == 1 && s.mode != "ghosts") {
        return;
    }
    const auto modules = mlipdrive::long_range_modules(s.model.module);
    if (modules.empty()) {
        return;
    }
    const auto where = comm->nprocs > 1 ? fmt::format("running it on {} MPI ranks", comm->nprocs)
                                        : std::string("'mode ghosts' (nothing folded)");
    const auto one_rank = comm->nprocs > 1
        ? std::string("Run it on one MPI rank (plain lmp, or mpirun -np 1), where the System is the whole "
                      "periodic box.")
        : std::string("Remove 'mode ghosts' (the default mode folds ghosts onto their atoms on one rank).");
    error->all(FLERR, "pair_style mlipdrive: {}",
               mlipdrive::split_long_range_message(s.model.name.empty() ? "model" : s.model.name, modules,
                                                   fmt::format("{:g} {}", s.interaction_range, s.units.length),
                                                   where, one_rank));
}

std::string PairMlipdrive::evaluation_failure(const std::exception& exception) const {
    const auto error = mlipdrive::error_text(exception);
    // an error raised inside the model (torch's c10::Error, TorchScript's
    // JITException), not one of the plugin's own checks (plain std::runtime_error)
    const bool in_model = typeid(exception) != typeid(std::runtime_error);
    if (!state->layout.keeps_ghosts || !in_model) {
        return error + "; check the structure (atoms too close or overlapping? lost atoms? too large a "
                       "timestep?) and that the model suits these elements";
    }
    // local + ghost atoms of one domain: the model may not work on a piece of the structure
    const auto one_rank = comm->nprocs > 1
        ? std::string("Run it on one MPI rank (plain lmp, or mpirun -np 1), where the System is the whole "
                      "periodic box, or check the structure (atoms too close or overlapping? lost atoms?).")
        : std::string("Remove 'mode ghosts' (the default mode folds ghosts onto their atoms on one rank), or "
                      "check the structure (atoms too close or overlapping? lost atoms?).");
    return mlipdrive::split_evaluation_failed_message(error, one_rank);
}

mlipdrive::Evaluation PairMlipdrive::evaluate(bool need_virial) {
    auto& s = *state;
    // an empty sub-domain (or only NULL types here) evaluates nothing, but
    // takes part in the collective steps after it
    if (s.adaptor->n_local == 0) {
        return mlipdrive::Evaluation();
    }
    s.evaluations++;
    const bool head_forces = mlipdrive::forces_from_head(s.settings);
    const bool head_stress = mlipdrive::stress_from_head(s.settings);
    if (!head_forces && !head_stress) {
        return mlipdrive::evaluate_conservative(s, eflag_atom != 0);
    }
    mlipdrive::Request request;
    request.forces = head_forces;
    request.stress = head_stress && vflag_global;
    // the energy's gradients give what the heads do not: the forces, or the virial
    const bool gradients = !head_forces || (!head_stress && need_virial);
    request.energy = eflag_either != 0 || gradients;
    request.per_atom_energy = eflag_atom != 0;
    torch::Tensor pbc;
    const std::array<bool, 3> periodic = {domain->xperiodic != 0, domain->yperiodic != 0, domain->zperiodic != 0};
    auto cell = mlipdrive::box_cell(domain, periodic, pbc);
    // a stress head gets the box as the cell (the volume of the structure, also
    // where ghosts are kept); no autograd leaves where no gradient is taken
    auto system = s.adaptor->system;
    if (!gradients || head_stress) {
        system = mlipdrive::system_with_cell(system, cell, pbc, !gradients);
    }
    return mlipdrive::evaluate_heads(s, request, system, cell, gradients);
}

void PairMlipdrive::store(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally) {
    auto& s = *state;
    const bool head_forces = mlipdrive::forces_from_head(s.settings);
    const bool head_stress = mlipdrive::stress_from_head(s.settings);
    if (head_forces) {
        // a collective (the net force is removed over all ranks): every rank comes here
        store_head_forces(evaluation, tally);
    }
    if (!evaluation.gradients.empty()) {
        mlipdrive::Tally from_gradients = tally;
        if (head_forces) {
            // the gradients give the virial only: their forces go to a scratch array
            s.discarded_forces.assign(3 * static_cast<size_t>(tally.n_all), 0.0);
            s.discarded_rows.resize(tally.n_all);
            for (int i = 0; i < tally.n_all; i++) {
                s.discarded_rows[i] = &s.discarded_forces[3 * static_cast<size_t>(i)];
            }
            from_gradients.f = s.discarded_rows.data();
        }
        if (head_stress) {
            from_gradients.global_virial = false;
            from_gradients.vatom = nullptr;
        }
        store_gradients(evaluation, from_gradients);
    }
    if (head_stress && tally.global_virial && evaluation.virial.defined()) {
        auto w = evaluation.virial.accessor<double, 2>();
        virial[0] += w[0][0];
        virial[1] += w[1][1];
        virial[2] += w[2][2];
        virial[3] += 0.5 * (w[0][1] + w[1][0]);
        virial[4] += 0.5 * (w[0][2] + w[2][0]);
        virial[5] += 0.5 * (w[1][2] + w[2][1]);
    }
    store_energies(evaluation);
}

void PairMlipdrive::store_gradients(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally) {
    auto& adaptor = *state->adaptor;
    const auto& gradients = evaluation.gradients;
    const size_t n_blocks = adaptor.blocks.size();
    for (size_t k = 0; k < n_blocks; k++) {
        mlipdrive::scatter_pair_gradient(adaptor.blocks[k], gradients[k], atom->x, tally);
    }
    mlipdrive::scatter_position_gradient(adaptor, gradients[n_blocks], atom->x, tally);
    if (gradients.size() > n_blocks + 1) {
        mlipdrive::add_cell_virial(adaptor, gradients[n_blocks + 1], tally);
    }
    for (int k = 0; k < 6 && tally.global_virial; k++) {
        virial[k] += tally.virial[k];
    }
}

void PairMlipdrive::store_energies(const mlipdrive::Evaluation& evaluation) {
    auto& adaptor = *state->adaptor;
    const auto& energies = evaluation.energies;
    if (!energies.values.defined()) {
        return;
    }
    if (eflag_global) {
        eng_vdwl += evaluation.energy;
    }
    if (eflag_atom) {
        auto values = energies.values.detach().to(torch::kCPU).to(torch::kFloat64).reshape({-1}).contiguous();
        const double* e = values.data_ptr<double>();
        const int64_t* atoms = energies.atoms.data_ptr<int64_t>();
        for (int64_t i = 0; i < values.size(0); i++) {
            eatom[adaptor.lammps_index[atoms[i]]] += e[i];
        }
    }
}

/* ----------------------------------------------------------------------
   non_conservative on, forces or stress: what comes from the model's heads
------------------------------------------------------------------------- */

void PairMlipdrive::check_head_virial() {
    auto& s = *state;
    if (!mlipdrive::stress_from_head(s.settings)) {
        return;
    }
    if (vflag_atom) {
        error->all(FLERR, "pair_style mlipdrive: non_conservative {} gives no per-atom virial (the "
                   "model's stress head is per structure); remove the per-atom stress compute, or "
                   "use non_conservative off or forces", s.settings.non_conservative);
    }
    if (vflag_global && s.outputs.non_conservative_stress.empty()) {
        error->all(FLERR, "pair_style mlipdrive: this run needs the virial (pressure, a barostat or "
                   "compute pressure), but model '{}' has no non_conservative_stress output; use "
                   "non_conservative off or forces, or a thermo_style without press", s.model.name);
    }
}

void PairMlipdrive::store_head_forces(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally) {
    auto& adaptor = *state->adaptor;
    const auto& forces = evaluation.forces;
    // the net force over the model's atoms of every rank is removed, as in
    // metatomic's ASE and i-PI engines
    double local[4] = {0.0, 0.0, 0.0, 0.0};
    const int64_t n = forces.values.defined() ? forces.values.size(0) : 0;
    const double* f = n ? forces.values.data_ptr<double>() : nullptr;
    const int64_t* atoms = n ? forces.atoms.data_ptr<int64_t>() : nullptr;
    for (int64_t i = 0; i < n; i++) {
        if (atoms[i] < adaptor.n_local) {
            for (int k = 0; k < 3; k++) {
                local[k] += f[3 * i + k];
            }
            local[3] += 1.0;
        }
    }
    double total[4];
    MPI_Allreduce(local, total, 4, MPI_DOUBLE, MPI_SUM, world);
    const double count = std::max(total[3], 1.0);
    for (int64_t i = 0; i < n; i++) {
        if (atoms[i] < adaptor.n_local) {
            const int a = adaptor.lammps_index[atoms[i]];
            for (int k = 0; k < 3; k++) {
                tally.f[a][k] += f[3 * i + k] - total[k] / count;
            }
        }
    }
}

/* ----------------------------------------------------------------------
   the energy-uncertainty check: per-atom values for `fix pair`, a warning (or
   an error) naming the step and the atoms with the largest uncertainty
------------------------------------------------------------------------- */

void PairMlipdrive::check_uncertainty(const mlipdrive::Evaluation& evaluation) {
    auto& s = *state;
    if (s.outputs.uncertainty.empty()) {
        return;
    }
    const auto& adaptor = *s.adaptor;
    const auto start = std::chrono::steady_clock::now();
    s.uncertainty.assign(std::max(atom->nmax, 1), 0.0);
    std::vector<double> values;
    std::vector<long> ids;
    const auto& uncertainty = evaluation.uncertainty;
    const int64_t n = uncertainty.values.defined() ? uncertainty.values.size(0) : 0;
    const double* u = n ? uncertainty.values.data_ptr<double>() : nullptr;
    const int64_t* atoms = n ? uncertainty.atoms.data_ptr<int64_t>() : nullptr;
    for (int64_t i = 0; i < n; i++) {
        if (atoms[i] < adaptor.n_local) {
            const int a = adaptor.lammps_index[atoms[i]];
            s.uncertainty[a] = u[i];
            values.push_back(s.uncertainty[a]);
            ids.push_back(static_cast<long>(atom->tag[a]));
        }
    }
    const double threshold = s.settings.uncertainty_threshold;
    auto report = mlipdrive::gather_uncertainty(world, values, ids, threshold);
    s.time_check += mlipdrive::seconds_since(start);
    if (report.count == 0) {
        return;
    }
    const auto message = mlipdrive::uncertainty_exceeded_message(
        fmt::format("{:g}", threshold), std::to_string(report.count), fmt::format("step {}", update->ntimestep),
        report.worst
    );
    if (s.settings.uncertainty_action == "stop") {
        error->all(FLERR, "pair_style mlipdrive (uncertainty_action stop): {}", message);
    } else if (comm->me == 0) {
        error->warning(FLERR, "pair_style mlipdrive: {}", message);
    }
}

void* PairMlipdrive::extract_peratom(const char* name, int& ncol) {
    ncol = 0;
    auto& s = *state;
    if (strcmp(name, "energy_uncertainty") != 0 || s.outputs.uncertainty.empty()) {
        return nullptr;
    }
    const size_t size = static_cast<size_t>(std::max(atom->nmax, 1));
    if (s.uncertainty.size() < size) {
        s.uncertainty.resize(size, 0.0);
    }
    return s.uncertainty.data();
}

/* ----------------------------------------------------------------------
   restart files: the words of pair_style and pair_coeff. read_restart gives them
   back to settings() and coeff(): the model is loaded again from the same path,
   so no pair_style line is needed after read_restart (one given anyway wins)
------------------------------------------------------------------------- */

namespace mlipdrive {

static void write_words(FILE* fp, const std::vector<std::string>& words) {
    const int count = static_cast<int>(words.size());
    fwrite(&count, sizeof(int), 1, fp);
    for (const auto& word: words) {
        const int length = static_cast<int>(word.size());
        fwrite(&length, sizeof(int), 1, fp);
        fwrite(word.data(), 1, word.size(), fp);
    }
}

/// Words written by write_words, read on rank 0 and broadcast to every rank.
static std::vector<std::string> read_words(FILE* fp, LAMMPS* lmp) {
    const bool reader = lmp->comm->me == 0;
    int count = 0;
    if (reader) {
        utils::sfread(FLERR, &count, sizeof(int), 1, fp, nullptr, lmp->error);
    }
    MPI_Bcast(&count, 1, MPI_INT, 0, lmp->world);
    std::vector<std::string> words(count);
    for (auto& word: words) {
        int length = 0;
        if (reader) {
            utils::sfread(FLERR, &length, sizeof(int), 1, fp, nullptr, lmp->error);
        }
        MPI_Bcast(&length, 1, MPI_INT, 0, lmp->world);
        word.resize(length);
        if (reader) {
            utils::sfread(FLERR, word.data(), 1, length, fp, nullptr, lmp->error);
        }
        MPI_Bcast(word.data(), length, MPI_CHAR, 0, lmp->world);
    }
    return words;
}

/// The first word list of a restart file written since restart files carry the
/// model's digest: this word, then the digest (older files start with pair_style's words).
static const char* const DIGEST_MARKER = "mlipdrive-model-digest";

static std::vector<char*> argv_of(std::vector<std::string>& words) {
    std::vector<char*> argv;
    for (auto& word: words) {
        argv.push_back(word.data());
    }
    return argv;
}

}  // namespace mlipdrive

void PairMlipdrive::write_restart(FILE* fp) {
    mlipdrive::write_words(fp, {mlipdrive::DIGEST_MARKER, state->model_digest});
    mlipdrive::write_words(fp, style_args);
    mlipdrive::write_words(fp, coeff_args);
    // the restart file keeps comm_modify cutoff: remember that it was ours
    fwrite(&comm_cutoff_set, sizeof(double), 1, fp);
}

void PairMlipdrive::read_restart(FILE* fp) {
    auto style_words = mlipdrive::read_words(fp, lmp);
    std::string digest;
    if (style_words.size() == 2 && style_words[0] == mlipdrive::DIGEST_MARKER) {
        digest = style_words[1];
        style_words = mlipdrive::read_words(fp, lmp);
    }
    auto coeff_words = mlipdrive::read_words(fp, lmp);
    auto style_argv = mlipdrive::argv_of(style_words);
    settings(static_cast<int>(style_argv.size()), style_argv.data());
    if (comm->me == 0 && !digest.empty() && digest != state->model_digest) {
        error->warning(FLERR, "pair_style mlipdrive: model file {} is not the one this restart file was "
                       "written with (its bytes changed: digest {} then, {} now); the run goes on with the "
                       "model now at that path. Give 'pair_style mlipdrive' with the model you mean after "
                       "read_restart to silence this", state->model_path, digest,
                       state->model_digest.empty() ? "unreadable" : state->model_digest);
    }
    if (!coeff_words.empty()) {
        auto coeff_argv = mlipdrive::argv_of(coeff_words);
        coeff(static_cast<int>(coeff_argv.size()), coeff_argv.data());
    }
    if (comm->me == 0) {
        utils::sfread(FLERR, &comm_cutoff_set, sizeof(double), 1, fp, nullptr, error);
    }
    MPI_Bcast(&comm_cutoff_set, 1, MPI_DOUBLE, 0, world);
}

/* ---------------------------------------------------------------------- */

void PairMlipdrive::finish() {
    auto& s = *state;
    if (comm->me != 0 || s.evaluations == 0) {
        return;
    }
    const double scale = 1000.0 / static_cast<double>(s.evaluations);
    const auto check = s.outputs.uncertainty.empty() ? std::string()
                                                      : fmt::format(", uncertainty check {:.3f}", s.time_check * scale);
    const auto& adaptor = *s.adaptor;
    const auto pairs = adaptor.pair_counts();
    utils::logmesg(lmp, "mlipdrive: System on rank 0: {} local + {} ghost atom(s), {} pair(s), {} between two "
                   "ghosts{} (last evaluation)\n", adaptor.n_local, adaptor.lammps_index.size() - adaptor.n_local,
                   pairs[0], pairs[1], adaptor.layout().prunes_ghost_pairs ? " (pruned: range = cutoff)" : "");
    const auto verify = s.fresh ? fmt::format(", verify {:.3f}", s.time_verify * scale) : std::string();
    utils::logmesg(lmp, "mlipdrive: {} evaluations on rank 0, ms per evaluation: system {:.3f}, "
                   "forward {:.3f}, backward {:.3f}, forces/virial {:.3f}{}{}\n",
                   s.evaluations, s.time_system * scale, s.time_forward * scale, s.time_backward * scale,
                   s.time_store * scale, check, verify);
    s.time_system = s.time_forward = s.time_backward = s.time_store = s.time_check = s.time_verify = 0.0;
    s.evaluations = 0;
}

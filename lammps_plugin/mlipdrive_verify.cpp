/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_verify.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "atom.h"
#include "domain.h"
#include "lammps.h"
#include "utils.h"

using namespace LAMMPS_NS;

namespace mlipdrive {

namespace {

using Shift = std::array<int32_t, 3>;

/// One pair as compared: (first, second, shift a, b, c) and its vector.
struct ComparedPair {
    std::array<int32_t, 5> key;
    std::array<double, 3> vector;
    bool operator<(const ComparedPair& other) const { return key < other.key; }
};

/// Each fresh System atom's kept counterpart and the translation between them.
struct Matching {
    std::vector<int32_t> kept;
    std::vector<Shift> translation;
};

/// A (rows, columns) host copy in float64 or int32.
torch::Tensor host(const torch::Tensor& tensor, torch::ScalarType dtype) {
    return tensor.detach().to(torch::kCPU).to(dtype).contiguous();
}

std::string describe_atom(LAMMPS* lmp, int i) {
    const bool local = i < lmp->atom->nlocal;
    return fmt::format("atom ID {} ({} atom {})", lmp->atom->tag[i], local ? "local" : "ghost", i);
}

std::string vector_text(const double* v) {
    return fmt::format("({:.17g}, {:.17g}, {:.17g})", v[0], v[1], v[2]);
}

/// The whole cell vectors along folded axes by which LAMMPS atom `to` is an
/// image of `from`; false if it is not one (to `tolerance`, in fractions of the box).
bool image_translation(LAMMPS* lmp, const Layout& layout, int from, int to, double tolerance, Shift& shift) {
    const double* xa = lmp->atom->x[from];
    const double* xb = lmp->atom->x[to];
    const double* h_inv = lmp->domain->h_inv;
    const double d[3] = {xb[0] - xa[0], xb[1] - xa[1], xb[2] - xa[2]};
    const double s[3] = {
        h_inv[0] * d[0] + h_inv[5] * d[1] + h_inv[4] * d[2],
        h_inv[1] * d[1] + h_inv[3] * d[2],
        h_inv[2] * d[2],
    };
    for (int axis = 0; axis < 3; axis++) {
        shift[axis] = layout.folded[axis] ? static_cast<int32_t>(std::lround(s[axis])) : 0;
        if (std::fabs(s[axis] - shift[axis]) > tolerance) {
            return false;
        }
    }
    return true;
}

/// Which System atoms the model may read a local energy from: the local atoms
/// and the atoms of some pair. A pruned layout's ghosts in no pair are left out
/// at its own sorts, so two Systems sorted at different steps may hold
/// different such ghosts: by the range contract no local energy depends on them.
std::vector<bool> atoms_in_pairs(const SystemAdaptor& adaptor) {
    std::vector<bool> seen(adaptor.lammps_index.size(), false);
    std::fill_n(seen.begin(), adaptor.n_local, true);
    for (size_t k = 0; k < adaptor.requests().size(); k++) {
        auto samples = host(adaptor.samples(k), torch::kInt32);
        const int32_t* s = samples.data_ptr<int32_t>();
        for (int64_t p = 0; p < samples.size(0); p++) {
            seen[s[5 * p]] = true;
            seen[s[5 * p + 1]] = true;
        }
    }
    return seen;
}

/// Pair each fresh atom with the kept atom standing for the same LAMMPS atom
/// (pruned layouts: each fresh atom in a pair or local; compare_pairs then
/// finds a kept pair whose atom the fresh System lacks).
std::string match_atoms(const SystemAdaptor& kept, const SystemAdaptor& fresh, LAMMPS* lmp, double tolerance,
                        Matching& matching) {
    const auto n_atoms = fresh.lammps_index.size();
    const bool pruned = kept.layout().prunes_ghost_pairs;
    if ((!pruned && kept.lammps_index.size() != n_atoms) || kept.n_local != fresh.n_local) {
        return fmt::format("the kept System has {} atoms ({} local), one built from scratch {} ({} local)",
                           kept.lammps_index.size(), kept.n_local, n_atoms, fresh.n_local);
    }
    const auto compared = atoms_in_pairs(fresh);
    auto kept_types = host(kept.system->types(), torch::kInt32);
    auto fresh_types = host(fresh.system->types(), torch::kInt32);
    std::vector<bool> taken(kept.lammps_index.size(), false);
    matching.kept.assign(n_atoms, -1);
    matching.translation.assign(n_atoms, Shift{0, 0, 0});
    for (size_t f = 0; f < n_atoms; f++) {
        if (pruned && !compared[f]) {
            continue;
        }
        const int atom = fresh.lammps_index[f];
        const int32_t c = kept.system_atom_of(atom);
        if (c < 0 || taken[c]) {
            return describe_atom(lmp, atom) + (c < 0 ? " is missing from the kept System"
                                                     : " stands for two atoms of the kept System");
        }
        taken[c] = true;
        matching.kept[f] = c;
        const int other = kept.lammps_index[c];
        if (lmp->atom->tag[other] != lmp->atom->tag[atom] || (c < kept.n_local) != (f < static_cast<size_t>(fresh.n_local))) {
            return describe_atom(lmp, atom) + " is " + describe_atom(lmp, other) + " in the kept System";
        }
        if (!image_translation(lmp, kept.layout(), atom, other, tolerance, matching.translation[f])) {
            return describe_atom(lmp, atom) + " is at another place in the kept System (" +
                   describe_atom(lmp, other) + ", not an image of it along the folded axes)";
        }
        if (kept_types.data_ptr<int32_t>()[c] != fresh_types.data_ptr<int32_t>()[f]) {
            return fmt::format("{} has atomic number {} in the kept System, {} in one built from scratch",
                               describe_atom(lmp, atom), kept_types.data_ptr<int32_t>()[c],
                               fresh_types.data_ptr<int32_t>()[f]);
        }
    }
    return "";
}

/// The pairs of one request as compared: in the kept System's atoms (`matching`,
/// or as they are when null), half lists in one orientation.
std::vector<ComparedPair> compared_pairs(const SystemAdaptor& adaptor, size_t request_index, const Matching* matching) {
    auto samples = host(adaptor.samples(request_index), torch::kInt32);
    auto vectors = host(adaptor.blocks[request_index].vectors, torch::kFloat64);
    const bool full = adaptor.requests()[request_index].options->full_list();
    const int64_t n = samples.size(0);
    const int32_t* s = samples.data_ptr<int32_t>();
    const double* v = vectors.data_ptr<double>();
    std::vector<ComparedPair> pairs(static_cast<size_t>(n));
    for (int64_t p = 0; p < n; p++) {
        auto& pair = pairs[p];
        pair.key = {s[5 * p], s[5 * p + 1], s[5 * p + 2], s[5 * p + 3], s[5 * p + 4]};
        pair.vector = {v[3 * p], v[3 * p + 1], v[3 * p + 2]};
        if (matching != nullptr) {
            const auto& ti = matching->translation[pair.key[0]];
            const auto& tj = matching->translation[pair.key[1]];
            pair.key[0] = matching->kept[pair.key[0]];
            pair.key[1] = matching->kept[pair.key[1]];
            for (int k = 0; k < 3; k++) {
                pair.key[2 + k] += ti[k] - tj[k];
            }
        }
        const Shift shift = {pair.key[2], pair.key[3], pair.key[4]};
        const Shift zero = {0, 0, 0};
        const bool flip = !full && (pair.key[0] > pair.key[1] || (pair.key[0] == pair.key[1] && shift < zero));
        if (flip) {
            pair.key = {pair.key[1], pair.key[0], -pair.key[2], -pair.key[3], -pair.key[4]};
            pair.vector = {-pair.vector[0], -pair.vector[1], -pair.vector[2]};
        }
    }
    std::sort(pairs.begin(), pairs.end());
    return pairs;
}

std::string describe_pair(const SystemAdaptor& kept, LAMMPS* lmp, const ComparedPair& pair) {
    return fmt::format("the pair of {} and {} with cell shift ({}, {}, {})",
                       describe_atom(lmp, kept.lammps_index[pair.key[0]]),
                       describe_atom(lmp, kept.lammps_index[pair.key[1]]), pair.key[2], pair.key[3], pair.key[4]);
}

/// The first pair in one list and not the other, or whose vectors differ.
std::string compare_pairs(const SystemAdaptor& kept, const SystemAdaptor& fresh, LAMMPS* lmp, size_t request_index,
                          const Matching& matching, double tolerance) {
    const auto kept_pairs = compared_pairs(kept, request_index, nullptr);
    const auto fresh_pairs = compared_pairs(fresh, request_index, &matching);
    const auto where = fmt::format("neighbour list {} (cutoff {:g})", request_index,
                                   kept.requests()[request_index].cutoff);
    size_t a = 0;
    size_t b = 0;
    while (a < kept_pairs.size() || b < fresh_pairs.size()) {
        const bool kept_only = b == fresh_pairs.size() || (a < kept_pairs.size() && kept_pairs[a] < fresh_pairs[b]);
        const bool fresh_only = a == kept_pairs.size() || (b < fresh_pairs.size() && fresh_pairs[b] < kept_pairs[a]);
        if (kept_only || fresh_only) {
            const auto& pair = kept_only ? kept_pairs[a] : fresh_pairs[b];
            return where + ": " + describe_pair(kept, lmp, pair) + " is only in " +
                   (kept_only ? "the kept System" : "a System built from scratch") +
                   fmt::format(" ({} pairs kept, {} from scratch)", kept_pairs.size(), fresh_pairs.size());
        }
        const double* u = kept_pairs[a].vector.data();
        const double* w = fresh_pairs[b].vector.data();
        if (std::fabs(u[0] - w[0]) + std::fabs(u[1] - w[1]) + std::fabs(u[2] - w[2]) > tolerance) {
            return where + ": " + describe_pair(kept, lmp, kept_pairs[a]) + " has the vector " + vector_text(u) +
                   " in the kept System, " + vector_text(w) + " from scratch";
        }
        a++;
        b++;
    }
    return "";
}

}  // namespace

std::string first_difference(const SystemAdaptor& kept, const SystemAdaptor& fresh, LAMMPS* lmp) {
    if (!torch::equal(kept.cell, fresh.cell) || !torch::equal(kept.system->pbc(), fresh.system->pbc())) {
        return "the cell or its periodicity differs";
    }
    const double* h = lmp->domain->h;
    const double box = std::max({h[0], h[1], h[2], 1.0});
    const double eps = kept.dtype() == torch::kFloat32 ? std::numeric_limits<float>::epsilon()
                                                         : std::numeric_limits<double>::epsilon();
    double cutoff = 1.0;
    for (const auto& request: kept.requests()) {
        cutoff = std::max(cutoff, request.cutoff);
    }
    // two images of one atom differ by whole cell vectors to LAMMPS's rounding;
    // a pair vector from either, rounded to the model's dtype, by a few of its units
    const double fraction_tolerance = 1e-9;
    const double vector_tolerance = 16 * eps * cutoff + 64 * std::numeric_limits<double>::epsilon() * box;
    Matching matching;
    auto difference = match_atoms(kept, fresh, lmp, fraction_tolerance, matching);
    for (size_t k = 0; k < kept.requests().size() && difference.empty(); k++) {
        difference = compare_pairs(kept, fresh, lmp, k, matching, vector_tolerance);
    }
    return difference;
}

}  // namespace mlipdrive

/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * The LAMMPS -> metatomic System adaptor. It turns LAMMPS's own neighbour list
 * into the model's neighbour lists (no second neighbour search), in one of two
 * layouts:
 *
 * - ghosts: the System holds local and ghost atoms as separate atoms with no
 *   periodicity; only local atoms contribute to the energy (selected_atoms) and
 *   forces on ghosts go back to their owners through LAMMPS's reverse
 *   communication. Works on any number of MPI ranks.
 * - periodic (one rank only): the System holds the local atoms and the periodic
 *   cell; each ghost in a pair is replaced by its owner and an integer cell shift.
 *   A message-passing model then runs on N atoms instead of N + ghosts.
 *
 * In both layouts each pair's distance vector is its own autograd leaf computed
 * from LAMMPS's coordinates (x_b - x_a with b the actual ghost image), so the
 * gradient of each pair is put on the LAMMPS atoms a and b themselves: forces on
 * ghosts are reverse-communicated, and the per-atom virial is split half and
 * half between the two atoms of each pair. Positions (and, periodic layout, the
 * cell) are autograd leaves too: models that recompute the pair vectors from
 * positions, cell and shifts (metatrain's MACE does) get their forces from
 * there, with per-atom virial x_i (x) f_i (plus an equal share of the cell term),
 * which still sums to the global virial.
 */
#pragma once

#include <cstdint>
#include <vector>

#include <torch/script.h>

#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

namespace LAMMPS_NS {
class LAMMPS;
class NeighList;
}  // namespace LAMMPS_NS

namespace mlipdrive {

/// One neighbour list the model asks for, with its cutoff in LAMMPS units.
struct PairRequest {
    metatomic_torch::NeighborListOptions options;
    double cutoff = 0.0;
};

/// The pairs of one request, for one step: what the model sees and what the
/// force scatter needs.
struct PairBlock {
    /// pair vectors, (n_pairs, 3) float64 on the model's device; an autograd leaf
    torch::Tensor vectors;
    /// LAMMPS indices (local or ghost) of the first and second atom of each pair
    std::vector<int> first;
    std::vector<int> second;
    /// the same vectors on the CPU, for the virial
    std::vector<double> vectors_cpu;
};

class SystemAdaptor {
public:
    /// `periodic`: periodic layout (one rank only), else ghosts layout.
    /// `ghost_pairs`: the LAMMPS list also has the pairs of ghost atoms
    /// (message-passing models in the ghosts layout).
    /// `layers`: interaction range / largest cutoff, rounded up (ghosts layout:
    /// atoms more than `layers` pair hops from every local atom, and pairs
    /// between atoms more than `layers - 1` hops away, cannot change the energy
    /// of local atoms and are left out of the System)
    SystemAdaptor(
        LAMMPS_NS::LAMMPS* lmp,
        std::vector<PairRequest> requests,
        bool periodic,
        bool ghost_pairs,
        int layers,
        torch::Device device,
        torch::ScalarType dtype
    );

    /// Build the System of the current step. `rebuilt` says that LAMMPS rebuilt
    /// its neighbour list (or anything else changed) since the last call;
    /// `atomic_numbers[type]` maps LAMMPS types to atomic numbers (-1: not ours).
    void update(LAMMPS_NS::NeighList* list, bool rebuilt, const std::vector<int32_t>& atomic_numbers, bool need_cell_gradient);

    /// The System for the model, with its neighbour lists.
    metatomic_torch::System system;
    /// System positions before the dtype conversion: (n_atoms, 3) float64 leaf
    torch::Tensor positions;
    /// System cell before the dtype conversion: (3, 3) float64 leaf (periodic layout)
    torch::Tensor cell;
    /// one block per request
    std::vector<PairBlock> blocks;
    /// LAMMPS index of each System atom
    std::vector<int> lammps_index;
    /// number of System atoms that are local (they come first)
    int n_local = 0;
    /// selected_atoms for the evaluation options: the local atoms (ghosts layout)
    torch::optional<metatensor_torch::Labels> selected_atoms;
    bool periodic() const { return periodic_; }

private:
    void rebuild_candidates(LAMMPS_NS::NeighList* list, const std::vector<int32_t>& atomic_numbers);
    /// ghosts layout: hop distances from the local atoms, and the System's atoms
    void select_ghosts(const std::vector<int32_t>& atomic_numbers);

    LAMMPS_NS::LAMMPS* lmp_;
    std::vector<PairRequest> requests_;
    bool periodic_;
    bool ghost_pairs_;
    int layers_;
    torch::Device device_;
    torch::ScalarType dtype_;

    /// System index of each LAMMPS atom (-1: not in the System)
    std::vector<int> system_index_;
    /// candidate pairs (LAMMPS indices) within the list cutoff: in the ghosts
    /// layout each unordered pair once (a < b); in the periodic layout every
    /// ordered pair with a local first atom
    std::vector<int> candidate_first_;
    std::vector<int> candidate_second_;
    /// periodic layout: owner (System index) and cell shift of each candidate's second atom
    std::vector<int> candidate_owner_;
    std::vector<int32_t> candidate_shift_;
    /// periodic layout: the candidate is kept in half lists
    std::vector<char> candidate_in_half_;
    /// this step: squared length of each candidate pair
    std::vector<double> candidate_distance2_;
    /// ghosts layout, this step: pair hops from the nearest local atom (per LAMMPS atom)
    std::vector<int> hops_;
    /// largest neighbour-list cutoff, squared
    double max_cutoff2_ = 0.0;
    torch::Tensor types_;
    int64_t selected_count_ = -1;
    metatensor_torch::Labels xyz_;
    metatensor_torch::Labels distance_;
};

}  // namespace mlipdrive

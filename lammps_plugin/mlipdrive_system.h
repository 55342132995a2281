/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * How a LAMMPS frame becomes a metatomic System. LAMMPS's own neighbour list
 * gives the pairs (no second neighbour search). Each periodic axis is either
 * folded (cell vector + integer shifts) or not; each ghost atom is either
 * folded onto the atom it is an image of along the folded axes, or kept as an
 * atom of its own. Three layouts follow:
 *
 * - periodic (one rank): every periodic axis folded, no ghost kept: the System
 *   holds the local atoms and the cell, each ghost in a pair is replaced by its
 *   owner and a cell shift. The cell vector of a non-periodic axis (boundary f,
 *   s or m) is zero and not periodic, as metatomic requires. A message-passing
 *   model then runs on N atoms instead of N + ghosts, on exactly the periodic
 *   System it was trained on.
 * - ghosts (`mode ghosts`, or several ranks with every periodic axis cut by the
 *   processor grid): nothing folded: the System holds the local atoms, then
 *   every ghost atom LAMMPS has (the ghost shell is the model's interaction
 *   range + the neighbour skin), all as separate atoms with no periodicity, and
 *   every pair between them shorter than the cutoff (LAMMPS's full list with
 *   the ghosts' own pairs).
 * - mixed (several ranks, some periodic axis not cut by the processor grid,
 *   which then spans the whole box on every rank): those axes folded as in the
 *   periodic layout, the ghosts across the cut axes kept as in the ghosts
 *   layout. A 2-rank slab decomposition of a periodic box hands the model its
 *   half plus the two ghost slabs, not the ghost shell all around.
 *
 * Folding: the copies of one atom ID that differ only along folded axes are one
 * System atom, its representative the local copy, else the copy nearest the
 * middle of the box along the folded axes (its neighbours within the list
 * cutoff are all LAMMPS atoms: the ghost shell reaches that far around the
 * box). Pairs are read from the representatives' lists only. Whenever ghosts
 * are kept, only local atoms count in the energy (selected_atoms), forces on
 * kept ghosts go back to their owners through LAMMPS's reverse communication:
 * this is exact for any model whose energy per atom depends only on atoms
 * within its declared range.
 *
 * Why a representative has every neighbour along the folded axes: LAMMPS's
 * Comm::borders() forwards ghosts axis by axis (x, then y, then z), each pass
 * also forwarding the ghosts the earlier passes brought, so a rank holds every
 * image whose coordinates (fractional ones for a triclinic box) lie within the
 * ghost cutoff of its sub-domain along all three axes at once, corners
 * included. Along a folded axis the sub-domain is the whole box, and some copy
 * of each ID lies inside the box there (the owner's coordinate does, and a
 * ghost brought across a cut axis keeps it); that copy is the nearest the
 * middle (every other image is a whole box length away), so every image within
 * the ghost cutoff (>= the list cutoff) of it on either side along the folded
 * axes is a LAMMPS atom and in its list. Along the cut axes a ghost's
 * neighbours reach only as far as the shell, which is why the shell is the
 * interaction range + skin thick. Ties (two copies equally central, e.g. at
 * fractional 0 and 1) go to the copy first in LAMMPS's index order (the strict
 * `<` in find_representatives); a local copy, the only one of its ID on the
 * rank, always represents.
 *
 * Ghost-ghost pairs (Layout::prunes_ghost_pairs). A model whose declared
 * interaction range equals its largest neighbour-list cutoff does no message
 * passing: by metatomic's contract (range = cutoff x pair hops) the energy of
 * an atom is a function of its own pairs, those with it as first or second
 * atom. The rank's energy E_loc = sum of the local atoms' energies then depends
 * only on pairs with at least one local atom, so
 *   - E_loc, and every per-atom energy reported (local atoms only), are the same
 *     with or without the pairs between two ghosts;
 *   - dE_loc/dr_p = 0 for a ghost-ghost pair p: the forces it would put on its
 *     two ghosts (reverse-communicated to their owners) and its virial terms
 *     (global and per atom: -r (x) g with g = 0) are zero;
 *   - the forces on local atoms, -dE_total/dx = -sum over ranks of dE_loc/dx,
 *     and on ghosts (sent back by LAMMPS's reverse communication, newton on
 *     is required) are unchanged.
 * So such a model gets the local atoms' lists only (no REQ_GHOST: LAMMPS does
 * not even build the ghosts' lists): every pair with a local atom is in its
 * list, in the mixed layout too (the image of a ghost representative within
 * the list cutoff of a local atom is a LAMMPS ghost, as the ghost shell is
 * that thick). The ghosts in no pair with a local atom go too: by the same
 * contract no local energy depends on an atom farther than the cutoff from
 * every local atom. The ghost shell is cutoff + skin thick, so without this a
 * rank's System would hold a layer (skin thick) of ghosts in no pair: for
 * SOAP-BPNN on 2 ranks (4.5 A cutoff, 2 A skin) 12 % of its atoms, whose
 * features and network it would evaluate for nothing. Which ghosts go follows
 * the pair sort (below): at each sort a ghost is a System atom only when it is
 * within the largest cutoff + margin of a local atom (in a settled or near
 * pair); no other ghost can come within the cutoff of a local atom before the
 * next sort (no atom has moved margin / 2), so the System is renumbered at the
 * sorts only, and the settled pairs' samples are written after it.
 * A model with a longer range (MACE, PET) gets every pair, as before; the
 * "System on rank 0" line counts the pairs between two ghosts it received.
 *
 * Every layout reads the atoms' types and positions at every step (fix atom/swap,
 * fix gcmc and friends change types without rebuilding the neighbour list) and
 * rebuild the pairs whenever LAMMPS rebuilds its list or the set of atoms that
 * the model handles changes. Each pair's distance vector is its own autograd
 * leaf computed from LAMMPS's coordinates (x_b - x_a, b the actual ghost
 * image): its gradient goes to the LAMMPS atoms a and b themselves. Positions
 * (and the cell) are leaves too, for models that recompute the pair vectors
 * from positions, cell and shifts (metatrain's MACE does).
 *
 * Cost: per step, only what changed. At a rebuild the candidates (LAMMPS's
 * pairs within the list cutoff, each unordered pair once, oriented by the
 * half-list rule of mlipdrive.neighbors.half_list_keep, generated into
 * mlipdrive_python_rules.h) are stored in compressed rows, then sorted once per
 * request against the atoms' positions: pairs shorter than cutoff - margin are
 * "settled" (their samples are written once), pairs longer than cutoff +
 * margin are dropped, the rest are "near". While no atom has moved more than
 * margin / 2 since the sort, a settled pair stays inside and a dropped one
 * outside, so each step only writes the settled pairs' vectors and tests the
 * near ones; an atom that moves further triggers a new sort. Every buffer is
 * kept between steps and written in the model's dtype (no allocation, no
 * second copy).
 */
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/script.h>

#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

namespace LAMMPS_NS {
class Domain;
class LAMMPS;
class NeighList;
}  // namespace LAMMPS_NS

namespace mlipdrive {

/// Keep freed memory in the process's heap (glibc: no mmap for large blocks, no
/// trim), so that the model's tensors of each step reuse the last step's pages
/// instead of faulting fresh ones in: torch allocates and frees every
/// intermediate tensor per step, and blocks over glibc's largest dynamic mmap
/// threshold (32 MiB; ~100 000 atoms for a pair model) were returned to the
/// system and zeroed again at each step (at 256 000 LJ atoms: 3.6x the model's
/// time). The peak RSS grows instead (there: +75 %). Process-wide, once; not
/// done when MALLOC_MMAP_THRESHOLD_ is set. Returns whether it is in effect.
bool keep_large_allocations();

/// Which axes fold ghost images onto their atoms and whether other ghosts are
/// System atoms (see the layouts above).
struct Layout {
    /// periodic axes whose images are folded (cell vector and shifts)
    std::array<bool, 3> folded = {false, false, false};
    /// ghosts that are no image along a folded axis are System atoms (several
    /// ranks, or mode ghosts); else every ghost must fold onto a local atom
    bool keeps_ghosts = true;
    /// kept ghosts: pairs between two of them are left out (a model whose
    /// interaction range equals its cutoff; see "Ghost-ghost pairs" above)
    bool prunes_ghost_pairs = false;
    /// whether LAMMPS's list must hold the ghosts' own pairs (REQ_GHOST)
    bool needs_ghost_pairs() const { return keeps_ghosts && !prunes_ghost_pairs; }
    bool any_folded() const { return folded[0] || folded[1] || folded[2]; }
    /// "periodic", "ghosts" or "mixed"
    std::string name() const;
    /// one line for the log: what the System holds
    std::string description() const;
};

/// The box as metatomic wants a cell: LAMMPS's box vectors along `axes`, a
/// zero vector along the other axes (metatomic requires it); `pbc` gets `axes`.
torch::Tensor box_cell(const LAMMPS_NS::Domain* domain, const std::array<bool, 3>& axes, torch::Tensor& pbc);

/// One neighbour list the model asks for, with its cutoff in LAMMPS units.
struct PairRequest {
    metatomic_torch::NeighborListOptions options;
    double cutoff = 0.0;
};

/// Rows of a host tensor, kept between steps: the storage is written again at
/// the next step unless something else still holds it (then a new one is made).
class RowBuffer {
public:
    RowBuffer(int64_t columns, torch::ScalarType dtype): columns_(columns), dtype_(dtype) {}
    /// start a step keeping the first `keep` rows, with room for about `rows`
    void start(int64_t rows, int64_t keep = 0);
    /// room for `rows` rows, keeping those written so far (count())
    void reserve(int64_t rows) {
        if (rows > capacity_) {
            grow(rows + rows / 2);
        }
    }
    /// the first row (rows are contiguous, `columns` values of the dtype each)
    template <typename T> T* data() { return static_cast<T*>(data_); }
    void set_count(int64_t count) { count_ = count; }
    int64_t count() const { return count_; }
    /// the rows written this step: a (count, columns) view
    torch::Tensor rows() const { return buffer_.narrow(0, 0, count_); }

private:
    void grow(int64_t capacity);
    int64_t columns_;
    torch::ScalarType dtype_;
    torch::Tensor buffer_;
    void* data_ = nullptr;
    int64_t capacity_ = 0;
    int64_t count_ = 0;
};

/// One request's pairs between two sorts of the candidates.
struct RequestPairs {
    explicit RequestPairs(torch::ScalarType dtype): vectors(3, dtype) {}
    /// samples (first_atom, second_atom, cell shift) of this step's pairs
    RowBuffer samples{5, torch::kInt32};
    /// their vectors x_b - x_a in the model's dtype
    RowBuffer vectors;
    /// their LAMMPS atoms (a, b)
    RowBuffer atoms{2, torch::kInt32};
    /// rows [0, settled) are the settled pairs, the same since the sort
    int64_t settled = 0;
    /// the near candidates (a, b), tested at each step
    std::vector<int> near;
};

/// The pairs of one request, for one step: what the model sees and what the
/// force scatter needs.
struct PairBlock {
    /// pair vectors x_b - x_a, (n_pairs, 3) in the model's dtype on its device;
    /// an autograd leaf
    torch::Tensor vectors;
    /// LAMMPS indices (local or ghost) a, b of each pair: (n_pairs, 2) int32 on
    /// the CPU; the virial recomputes x_b - x_a from LAMMPS's coordinates
    torch::Tensor atoms;
    int64_t size() const { return atoms.defined() ? atoms.size(0) : 0; }
};

class SystemAdaptor {
public:
    SystemAdaptor(
        LAMMPS_NS::LAMMPS* lmp,
        std::vector<PairRequest> requests,
        Layout layout,
        torch::Device device,
        torch::ScalarType dtype,
        bool use_atom_map = true
    );

    /// Build the System of the current step. `list_rebuilt` says that LAMMPS
    /// rebuilt its neighbour list (or the atoms changed) since the last call;
    /// `atomic_numbers[type]` maps LAMMPS types to atomic numbers (-1: not ours).
    void update(LAMMPS_NS::NeighList* list, bool list_rebuilt, const std::vector<int32_t>& atomic_numbers,
                bool need_cell_gradient);

    /// The System for the model, with its neighbour lists.
    metatomic_torch::System system;
    /// System positions in the model's dtype: (n_atoms, 3) leaf
    torch::Tensor positions;
    /// System cell before the dtype conversion: (3, 3) float64 (a leaf when asked)
    torch::Tensor cell;
    /// one block per request
    std::vector<PairBlock> blocks;
    /// LAMMPS index of each System atom
    std::vector<int> lammps_index;
    /// number of System atoms that are local (they come first)
    int n_local = 0;
    /// selected_atoms for the evaluation options: the local atoms (when ghosts are kept)
    torch::optional<metatensor_torch::Labels> selected_atoms;

    /// System index of the atom that stands for LAMMPS atom i in pairs (its
    /// representative's; -1: not in the System)
    int32_t system_atom_of(int i) const {
        return i < static_cast<int>(pair_index_.size()) ? pair_index_[i] : -1;
    }
    /// this step's samples (first_atom, second_atom, cell shift) of one request
    torch::Tensor samples(size_t request_index) const { return pairs_[request_index].samples.rows(); }
    /// this step's pairs over every request, and how many of them join two
    /// ghosts (zero when they are pruned): what the model received
    std::array<int64_t, 2> pair_counts() const;
    const std::vector<PairRequest>& requests() const { return requests_; }
    const Layout& layout() const { return layout_; }
    torch::ScalarType dtype() const { return dtype_; }

private:
    /// each LAMMPS atom's representative (itself, or the atom it images along
    /// the folded axes) and its cell shift relative to it
    void find_representatives();
    /// the LAMMPS atoms of each atom ID, chained in LAMMPS order: next[i] is
    /// the copy of i's ID after i (-1: none); memory O(local + ghost atoms)
    void chain_copies(std::vector<int>& next) const;
    /// how far atom i is from the middle of the box along the folded axes
    /// (fractional coordinates; -1 for a local atom, which always represents)
    double centring(int i) const;
    /// whether atoms i and j (one ID) differ only by images along folded axes
    bool same_copy(int i, int j) const;
    /// shift of copy `b` relative to representative `r` (folded axes only);
    /// throws if b is not such an image of r
    void set_image_shift(int b, int r);
    /// the System's atoms: the representatives whose type the model handles,
    /// local first
    void select_atoms(const std::vector<int32_t>& atomic_numbers);
    /// atomic numbers of the System atoms, read again; false if an atom left
    /// or joined the set of atoms the model handles
    bool refresh_species(const std::vector<int32_t>& atomic_numbers);
    /// each LAMMPS atom's System index in pairs: its representative's
    void index_pair_atoms();
    /// candidate pairs from LAMMPS's list, within the largest cutoff + skin
    void collect_candidates(LAMMPS_NS::NeighList* list);
    /// settled, near or dropped: each request's candidates at the current
    /// positions (pruned: the System's ghosts first, see mark_ghosts_in_reach)
    void sort_candidates(const std::vector<int32_t>& atomic_numbers);
    /// pruned layouts: in_reach_ for the ghosts within the largest cutoff +
    /// margin of a local atom at the sort's positions (the others are in no
    /// pair until the next sort)
    void mark_ghosts_in_reach();
    void sort_request(size_t request_index);
    /// a little inside the margin, for the rounding of the distances
    static double sort_slack(double cutoff) { return 1e-9 * cutoff; }
    /// the length beyond which a pair of this cutoff is dropped at a sort
    /// (sort_request; mark_ghosts_in_reach with the largest cutoff)
    double dropped_beyond(double cutoff) const { return cutoff + margin_ + sort_slack(cutoff); }
    /// whether some atom moved more than margin / 2 since the last sort
    bool moved_too_far() const;
    void build_positions_and_cell(bool need_cell_gradient);
    /// this step's pairs of one request, into its buffers (T: the model's
    /// dtype; SHIFTS: some axis folded; FULL: full list)
    template <typename T, bool SHIFTS, bool FULL> void fill_block(size_t request_index);
    void build_block(size_t request_index);
    void build_selected_atoms();

    LAMMPS_NS::LAMMPS* lmp_;
    std::vector<PairRequest> requests_;
    Layout layout_;
    torch::Device device_;
    torch::ScalarType dtype_;
    /// chain the copies of an ID through LAMMPS's atom map where it has one
    bool use_atom_map_;

    /// System index of each LAMMPS atom (-1: not in the System)
    std::vector<int> system_index_;
    /// LAMMPS index of each LAMMPS atom's representative (itself if it is one)
    std::vector<int> representative_;
    /// System index that a pair with this LAMMPS atom uses: its
    /// representative's (-1: not in the System)
    std::vector<int32_t> pair_index_;
    /// cell shift (3 per LAMMPS atom) of each atom relative to its
    /// representative: zero for representatives and along unfolded axes
    std::vector<int32_t> image_shift_;
    /// atomic number of each System atom
    std::vector<int32_t> species_;
    /// candidate pairs (LAMMPS indices) within the list cutoff, each unordered
    /// pair once, as compressed rows: row r holds the pairs
    /// (candidate_first_[r], candidate_second_[k]) for k in
    /// [candidate_start_[r], candidate_start_[r + 1])
    std::vector<int> candidate_first_;
    std::vector<int64_t> candidate_start_;
    std::vector<int> candidate_second_;
    /// LAMMPS coordinates (local and ghost) at the last sort
    std::vector<double> sorted_at_;
    /// whether each LAMMPS atom may be a System atom: 1 but for the ghosts a
    /// pruned layout leaves out (mark_ghosts_in_reach)
    std::vector<char> in_reach_;
    /// the requests' largest cutoff (LAMMPS length units)
    double max_cutoff_ = 0.0;
    /// how far (LAMMPS length units) from its cutoff a pair is settled or dropped
    double margin_ = 0.0;
    /// kept between steps: System positions, and each request's pairs
    RowBuffer positions_buffer_;
    std::vector<RequestPairs> pairs_;
    torch::Tensor types_;
    int64_t selected_count_ = -1;
    metatensor_torch::Labels xyz_;
    metatensor_torch::Labels distance_;
};

}  // namespace mlipdrive

/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_system.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "atom.h"
#include "domain.h"
#include "lammps.h"
#include "neigh_list.h"

#include "mlipdrive_python_rules.h"

using namespace LAMMPS_NS;

namespace mlipdrive {

static metatensor_torch::Labels make_labels(std::vector<std::string> names, torch::Tensor values) {
    auto list = c10::List<std::string>();
    for (auto& name: names) {
        list.push_back(std::move(name));
    }
    return torch::make_intrusive<metatensor_torch::LabelsHolder>(
        torch::IValue(list), std::move(values), metatensor::assume_unique{}
    );
}

void RowBuffer::start(int64_t rows, int64_t keep) {
    count_ = std::min(keep, count_);
    // the last step's tensors may still be held outside (a model that kept its
    // inputs): never write under them, copy the rows to keep instead
    if (buffer_.defined() && buffer_.storage().use_count() > 1) {
        grow(std::max(capacity_, rows));
    }
    // a step without rows (a rank whose atoms have no pair) still gets its
    // (0, columns) view
    if (!buffer_.defined()) {
        grow(rows);
    }
    reserve(rows);
}

void RowBuffer::grow(int64_t capacity) {
    auto bigger = torch::empty({std::max<int64_t>(capacity, 16), columns_}, torch::TensorOptions().dtype(dtype_));
    if (count_ > 0) {
        bigger.narrow(0, 0, count_).copy_(buffer_.narrow(0, 0, count_));
    }
    buffer_ = bigger;
    data_ = buffer_.data_ptr();
    capacity_ = buffer_.size(0);
}

/// how many near candidates ahead fill_block asks for coordinates (the near
/// list has this many padding pairs at its end)
static constexpr int64_t PREFETCH = 16;

bool keep_large_allocations() {
    // glibc's own variable, if set, is the user's choice (and the way back:
    // MALLOC_MMAP_THRESHOLD_=131072 is glibc's default)
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) {
        return false;
    }
    static const bool kept = mallopt(M_MMAP_THRESHOLD, std::numeric_limits<int>::max()) == 1 &&
                             mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
    return kept;
}

torch::Tensor box_cell(const Domain* domain, const std::array<bool, 3>& axes, torch::Tensor& pbc) {
    const double* h = domain->h;
    const double rows[3][3] = {{h[0], 0.0, 0.0}, {h[5], h[1], 0.0}, {h[4], h[3], h[2]}};
    auto cell = torch::zeros({3, 3}, torch::TensorOptions().dtype(torch::kFloat64));
    pbc = torch::zeros({3}, torch::TensorOptions().dtype(torch::kBool));
    auto data = cell.accessor<double, 2>();
    for (int axis = 0; axis < 3; axis++) {
        pbc[axis] = axes[axis];
        for (int k = 0; k < 3 && axes[axis]; k++) {
            data[axis][k] = rows[axis][k];
        }
    }
    return cell;
}

static const char* const AXES[3] = {"x", "y", "z"};

std::string Layout::name() const {
    if (!keeps_ghosts) {
        return "periodic";
    }
    return any_folded() ? "mixed" : "ghosts";
}

std::string Layout::description() const {
    if (!keeps_ghosts) {
        return "local atoms + cell, ghosts folded onto their owners";
    }
    const std::string pruned =
        prunes_ghost_pairs ? ", no pair between two ghosts and no ghost out of a local atom's reach (range = cutoff)" : "";
    if (!any_folded()) {
        return "local + ghost atoms within the interaction range + skin, no periodicity" + pruned;
    }
    std::string axes;
    for (int axis = 0; axis < 3; axis++) {
        axes += folded[axis] ? std::string(axes.empty() ? "" : " ") + AXES[axis] : "";
    }
    return "local + ghost atoms across the axes the processor grid cuts; periodic along " + axes +
           " (not cut), where ghosts fold onto their atoms" + pruned;
}

SystemAdaptor::SystemAdaptor(
    LAMMPS* lmp,
    std::vector<PairRequest> requests,
    Layout layout,
    torch::Device device,
    torch::ScalarType dtype,
    bool use_atom_map
):
    lmp_(lmp),
    requests_(std::move(requests)),
    layout_(layout),
    device_(device),
    dtype_(dtype),
    use_atom_map_(use_atom_map),
    positions_buffer_(3, dtype) {
    if (dtype_ != torch::kFloat32 && dtype_ != torch::kFloat64) {
        throw std::runtime_error(std::string("model dtype ") + c10::toString(dtype_) +
                                 " unsupported; re-export the model as float32 or float64");
    }
    auto int_options = torch::TensorOptions().dtype(torch::kInt32);
    xyz_ = make_labels({"xyz"}, torch::tensor({0, 1, 2}, int_options).reshape({3, 1}))->to(device_);
    distance_ = make_labels({"distance"}, torch::zeros({1, 1}, int_options))->to(device_);
    blocks.resize(requests_.size());
    double max_cutoff = 0.0;
    for (const auto& request: requests_) {
        pairs_.emplace_back(dtype_);
        max_cutoff = std::max(max_cutoff, request.cutoff);
    }
    // wider means more near pairs to test per step, narrower more frequent sorts
    margin_ = PAIR_SORT_MARGIN * max_cutoff;
    max_cutoff_ = max_cutoff;
}

/// fractional components of a vector d through the inverse of LAMMPS's shape
/// matrix h = (xprd, yprd, zprd, yz, xz, xy): cell rows a = (xprd, 0, 0),
/// b = (xy, yprd, 0), c = (xz, yz, zprd)
static void fractional(const double* h_inv, const double* d, double* s) {
    s[0] = h_inv[0] * d[0] + h_inv[5] * d[1] + h_inv[4] * d[2];
    s[1] = h_inv[1] * d[1] + h_inv[3] * d[2];
    s[2] = h_inv[2] * d[2];
}

void SystemAdaptor::chain_copies(std::vector<int>& next) const {
    const Atom* atom = lmp_->atom;
    const int nall = atom->nlocal + atom->nghost;
    next.assign(nall, -1);
    // LAMMPS's atom map, where the input has one (atom_modify map, molecular
    // styles, fix neb...): borders() chains every copy of an ID in sametag, in
    // LAMMPS order. Else a hash of this rank's IDs: O(local + ghost atoms) either
    // way, never an array sized by the largest ID (IDs may reach 2^31 - 1)
    if (use_atom_map_ && atom->map_style != 0 && atom->sametag != nullptr) {
        std::copy(atom->sametag, atom->sametag + nall, next.begin());
        return;
    }
    std::unordered_map<tagint, int> later;
    later.reserve(static_cast<size_t>(nall));
    for (int i = nall - 1; i >= 0; i--) {
        auto found = later.try_emplace(atom->tag[i], i);
        if (!found.second) {
            next[i] = found.first->second;
            found.first->second = i;
        }
    }
}

double SystemAdaptor::centring(int i) const {
    if (i < lmp_->atom->nlocal) {
        return -1.0;
    }
    const double* x = lmp_->atom->x[i];
    const double* lo = lmp_->domain->boxlo;
    const double d[3] = {x[0] - lo[0], x[1] - lo[1], x[2] - lo[2]};
    double s[3];
    fractional(lmp_->domain->h_inv, d, s);
    double sum = 0.0;
    for (int axis = 0; axis < 3; axis++) {
        sum += layout_.folded[axis] ? std::fabs(s[axis] - 0.5) : 0.0;
    }
    return sum;
}

bool SystemAdaptor::same_copy(int i, int j) const {
    double** x = lmp_->atom->x;
    const double d[3] = {x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]};
    double s[3];
    fractional(lmp_->domain->h_inv, d, s);
    for (int axis = 0; axis < 3; axis++) {
        if (!layout_.folded[axis] && std::fabs(s[axis]) >= 0.5) {
            return false;
        }
    }
    return true;
}

void SystemAdaptor::find_representatives() {
    const int nall = lmp_->atom->nlocal + lmp_->atom->nghost;
    std::vector<int> next;
    chain_copies(next);
    representative_.assign(nall, -1);
    image_shift_.assign(3 * static_cast<size_t>(nall), 0);
    // each unassigned atom starts a group: its later copies that are the same
    // atom up to folded-axis images; the group's most central copy represents it
    for (int first = 0; first < nall; first++) {
        if (representative_[first] >= 0) {
            continue;
        }
        int best = first;
        double best_centring = centring(first);
        representative_[first] = first;
        for (int j = next[first]; j >= 0; j = next[j]) {
            if (representative_[j] < 0 && same_copy(first, j)) {
                representative_[j] = first;
                const double c = centring(j);
                if (c < best_centring) {
                    best = j;
                    best_centring = c;
                }
            }
        }
        for (int j = first; j >= 0; j = next[j]) {
            if (representative_[j] == first) {
                set_image_shift(j, best);
            }
        }
        // `first` last: the loop recognises the group by it
        for (int j = next[first]; j >= 0; j = next[j]) {
            representative_[j] = representative_[j] == first ? best : representative_[j];
        }
        representative_[first] = best;
    }
}

void SystemAdaptor::set_image_shift(int b, int r) {
    if (b == r) {
        return;
    }
    if (!layout_.keeps_ghosts && r >= lmp_->atom->nlocal) {
        throw std::runtime_error(
            "ghost atom with ID " + std::to_string(lmp_->atom->tag[b]) + " has no local owner; "
            "the periodic layout needs every atom on one MPI rank (use 'mode ghosts')"
        );
    }
    double** x = lmp_->atom->x;
    const double* h = lmp_->domain->h;
    const double delta[3] = {x[b][0] - x[r][0], x[b][1] - x[r][1], x[b][2] - x[r][2]};
    double s[3];
    fractional(lmp_->domain->h_inv, delta, s);
    int32_t* shift = &image_shift_[3 * static_cast<size_t>(b)];
    for (int axis = 0; axis < 3; axis++) {
        shift[axis] = layout_.folded[axis] ? static_cast<int32_t>(std::lround(s[axis])) : 0;
    }
    const double image[3] = {
        shift[0] * h[0] + shift[1] * h[5] + shift[2] * h[4],
        shift[1] * h[1] + shift[2] * h[3],
        shift[2] * h[2],
    };
    const double mismatch = std::fabs(image[0] - delta[0]) + std::fabs(image[1] - delta[1]) +
                            std::fabs(image[2] - delta[2]);
    if (mismatch > 1e-6 * (h[0] + h[1] + h[2])) {
        throw std::runtime_error(
            "ghost atom " + std::to_string(lmp_->atom->tag[b]) + " is not a periodic image "
            "of its atom; use 'mode ghosts' in pair_style mlipdrive"
        );
    }
}

void SystemAdaptor::select_atoms(const std::vector<int32_t>& atomic_numbers) {
    const int nlocal = lmp_->atom->nlocal;
    const int nall = nlocal + lmp_->atom->nghost;
    const int* type = lmp_->atom->type;
    system_index_.assign(nall, -1);
    lammps_index.clear();
    species_.clear();
    n_local = 0;
    for (int i = 0; i < nall; i++) {
        // pair_coeff NULL leaves types to other styles under hybrid
        const int32_t z = atomic_numbers[type[i]];
        if (representative_[i] == i && z >= 0 && in_reach_[i]) {
            system_index_[i] = static_cast<int>(lammps_index.size());
            lammps_index.push_back(i);
            species_.push_back(z);
            n_local += i < nlocal ? 1 : 0;
        }
    }
    types_ = torch::tensor(species_, torch::TensorOptions().dtype(torch::kInt32)).to(device_);
}

bool SystemAdaptor::refresh_species(const std::vector<int32_t>& atomic_numbers) {
    const int nall = lmp_->atom->nlocal + lmp_->atom->nghost;
    if (static_cast<int>(system_index_.size()) != nall) {
        return false;
    }
    const int* type = lmp_->atom->type;
    bool changed = false;
    for (int i = 0; i < nall; i++) {
        if (representative_[i] != i) {
            continue;
        }
        const int32_t z = atomic_numbers[type[i]];
        const int s = system_index_[i];
        if ((z >= 0 && in_reach_[i]) != (s >= 0)) {
            return false;
        }
        if (s >= 0 && species_[s] != z) {
            species_[s] = z;
            changed = true;
        }
    }
    if (changed) {
        types_ = torch::tensor(species_, torch::TensorOptions().dtype(torch::kInt32)).to(device_);
    }
    return true;
}

void SystemAdaptor::index_pair_atoms() {
    const int nall = lmp_->atom->nlocal + lmp_->atom->nghost;
    pair_index_.assign(nall, -1);
    for (int i = 0; i < nall; i++) {
        pair_index_[i] = system_index_[representative_[i]];
    }
}

void SystemAdaptor::collect_candidates(NeighList* list) {
    candidate_first_.clear();
    candidate_start_.assign(1, 0);
    // kept ghosts: the list also has the ghosts' own pairs (REQ_GHOST), unless
    // they are pruned (then the local atoms' lists hold every pair left). Pairs
    // are read from the representatives' lists: each unordered pair is in the
    // list of both its atoms' representatives, and the half-list rule keeps one
    // orientation (without shifts: a < b)
    const int n_listed = list->inum + (layout_.needs_ghost_pairs() ? list->gnum : 0);
    int64_t n = 0;
    for (int ii = 0; ii < n_listed; ii++) {
        const int a = list->ilist[ii];
        const int32_t first = system_index_[a];
        if (first < 0) {
            continue;
        }
        const int* neighbors = list->firstneigh[a];
        const int count = list->numneigh[a];
        if (n + count > static_cast<int64_t>(candidate_second_.size())) {
            candidate_second_.resize(std::max(2 * candidate_second_.size(), static_cast<size_t>(n + count)));
        }
        // every neighbour is written at n, which only moves on for the kept ones
        int* second_atoms = candidate_second_.data();
        for (int jj = 0; jj < count; jj++) {
            const int b = neighbors[jj] & NEIGHMASK;
            const int32_t second = pair_index_[b];
            const int32_t* shift = &image_shift_[3 * static_cast<size_t>(b)];
            second_atoms[n] = b;
            n += (second >= 0) & half_list_keep(first, second, shift[0], shift[1], shift[2]);
        }
        if (n > candidate_start_.back()) {
            candidate_first_.push_back(a);
            candidate_start_.push_back(n);
        }
    }
    candidate_second_.resize(n);
}

void SystemAdaptor::update(NeighList* list, bool list_rebuilt, const std::vector<int32_t>& atomic_numbers,
                           bool need_cell_gradient) {
    // the last step's System and blocks hold views of the buffers written below
    system = metatomic_torch::System();
    positions = torch::Tensor();
    for (auto& block: blocks) {
        block = PairBlock();
    }
    if (list_rebuilt || !refresh_species(atomic_numbers)) {
        find_representatives();
        // every ghost a candidate until the candidates are sorted
        in_reach_.assign(lmp_->atom->nlocal + lmp_->atom->nghost, 1);
        select_atoms(atomic_numbers);
        index_pair_atoms();
        collect_candidates(list);
        sort_candidates(atomic_numbers);
    } else if (moved_too_far()) {
        sort_candidates(atomic_numbers);
    }
    build_positions_and_cell(need_cell_gradient);
    for (size_t k = 0; k < requests_.size(); k++) {
        build_block(k);
    }
    build_selected_atoms();
}

void SystemAdaptor::sort_candidates(const std::vector<int32_t>& atomic_numbers) {
    const double* x = lmp_->atom->x[0];
    const int64_t n_values = 3 * static_cast<int64_t>(lmp_->atom->nlocal + lmp_->atom->nghost);
    sorted_at_.assign(x, x + n_values);
    if (layout_.prunes_ghost_pairs) {
        // the System's ghosts follow the sort (the samples written below use
        // their new indices)
        mark_ghosts_in_reach();
        select_atoms(atomic_numbers);
        index_pair_atoms();
    }
    for (size_t k = 0; k < requests_.size(); k++) {
        sort_request(k);
    }
}

void SystemAdaptor::mark_ghosts_in_reach() {
    const int nlocal = lmp_->atom->nlocal;
    std::fill(in_reach_.begin(), in_reach_.end(), 0);
    std::fill(in_reach_.begin(), in_reach_.begin() + nlocal, 1);
    // sort_request's dropped distance for the largest cutoff, from the same
    // coordinates and arithmetic: a pair it does not drop has its atoms in reach
    const double reach = dropped_beyond(max_cutoff_);
    const double reach2 = reach * reach;
    const double* x = sorted_at_.data();
    for (size_t row = 0; row < candidate_first_.size(); row++) {
        const double* xa = x + 3 * static_cast<int64_t>(candidate_first_[row]);
        for (int64_t c = candidate_start_[row]; c < candidate_start_[row + 1]; c++) {
            const int b = candidate_second_[c];
            const double* xb = x + 3 * static_cast<int64_t>(b);
            const double d[3] = {xb[0] - xa[0], xb[1] - xa[1], xb[2] - xa[2]};
            if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < reach2) {
                in_reach_[representative_[b]] = 1;
            }
        }
    }
}

/// One pair's sample and LAMMPS atoms: (a, b) with System indices (i, j) and
/// cell shift sign * s.
static inline void write_sample(int32_t* sample, int32_t* atom, int a, int b, int32_t i, int32_t j,
                                const int32_t* s, int sign) {
    sample[0] = i;
    sample[1] = j;
    sample[2] = sign * s[0];
    sample[3] = sign * s[1];
    sample[4] = sign * s[2];
    atom[0] = a;
    atom[1] = b;
}

void SystemAdaptor::sort_request(size_t request_index) {
    auto& pairs = pairs_[request_index];
    const bool full = requests_[request_index].options->full_list();
    const int64_t per_pair = full ? 2 : 1;
    const double cutoff = requests_[request_index].cutoff;
    const double settled = std::max(cutoff - margin_ - sort_slack(cutoff), 0.0);
    const double settled2 = settled * settled;
    const double dropped = dropped_beyond(cutoff);
    const double dropped2 = dropped * dropped;
    const double* x = sorted_at_.data();
    pairs.samples.start(pairs.settled);
    pairs.atoms.start(pairs.settled);
    int64_t n = 0;
    int64_t m = 0;
    for (size_t row = 0; row < candidate_first_.size(); row++) {
        const int64_t begin = candidate_start_[row];
        const int64_t end = candidate_start_[row + 1];
        pairs.samples.reserve(n + per_pair * (end - begin));
        pairs.atoms.reserve(n + per_pair * (end - begin));
        if (2 * (m + end - begin) > static_cast<int64_t>(pairs.near.size())) {
            pairs.near.resize(std::max(2 * pairs.near.size(), static_cast<size_t>(2 * (m + end - begin))));
        }
        int32_t* sample = pairs.samples.data<int32_t>();
        int32_t* atom = pairs.atoms.data<int32_t>();
        int* near = pairs.near.data();
        const int a = candidate_first_[row];
        const int32_t i = pair_index_[a];
        const double* xa = x + 3 * static_cast<int64_t>(a);
        // each candidate is written as settled at n and as near at m; only the
        // count of its kind moves on (no branch on the distance)
        for (int64_t c = begin; c < end; c++) {
            const int b = candidate_second_[c];
            const double* xb = x + 3 * static_cast<int64_t>(b);
            const double d[3] = {xb[0] - xa[0], xb[1] - xa[1], xb[2] - xa[2]};
            const double d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            const int32_t j = pair_index_[b];
            const int32_t* s = &image_shift_[3 * static_cast<size_t>(b)];
            write_sample(sample + 5 * n, atom + 2 * n, a, b, i, j, s, 1);
            if (full) {
                write_sample(sample + 5 * (n + 1), atom + 2 * (n + 1), b, a, j, i, s, -1);
            }
            near[2 * m] = a;
            near[2 * m + 1] = b;
            const bool is_settled = d2 < settled2;
            n += is_settled ? per_pair : 0;
            m += (!is_settled) & (d2 < dropped2);
        }
        pairs.samples.set_count(n);
        pairs.atoms.set_count(n);
    }
    pairs.settled = n;
    // the near candidates' look-ahead (see fill_block) reads past the end
    pairs.near.resize(2 * (m + PREFETCH));
    std::fill(pairs.near.begin() + 2 * m, pairs.near.end(), 0);
}

bool SystemAdaptor::moved_too_far() const {
    const double* x = lmp_->atom->x[0];
    const int64_t n_values = 3 * static_cast<int64_t>(lmp_->atom->nlocal + lmp_->atom->nghost);
    if (n_values != static_cast<int64_t>(sorted_at_.size())) {
        return true;
    }
    double largest2 = 0.0;
    for (int64_t k = 0; k < n_values; k += 3) {
        const double d0 = x[k] - sorted_at_[k];
        const double d1 = x[k + 1] - sorted_at_[k + 1];
        const double d2 = x[k + 2] - sorted_at_[k + 2];
        largest2 = std::max(largest2, d0 * d0 + d1 * d1 + d2 * d2);
    }
    // two atoms of a pair each moved at most sqrt(largest2): its length changed
    // by at most twice that
    return 2.0 * std::sqrt(largest2) > margin_;
}

/// A host tensor as a leaf on `device`: the same storage on the CPU, a copy elsewhere.
static torch::Tensor leaf_on(const torch::Tensor& host, torch::Device device) {
    auto tensor = device.is_cpu() ? host.detach() : host.to(device);
    return tensor.requires_grad_(true);
}

template <typename T>
static void copy_positions(const double* x, const std::vector<int>& lammps_index, RowBuffer& buffer) {
    const auto n_atoms = static_cast<int64_t>(lammps_index.size());
    buffer.start(n_atoms);
    T* row = buffer.data<T>();
    for (int64_t s = 0; s < n_atoms; s++) {
        const double* xi = x + 3 * static_cast<int64_t>(lammps_index[s]);
        row[3 * s + 0] = static_cast<T>(xi[0]);
        row[3 * s + 1] = static_cast<T>(xi[1]);
        row[3 * s + 2] = static_cast<T>(xi[2]);
    }
    buffer.set_count(n_atoms);
}

void SystemAdaptor::build_positions_and_cell(bool need_cell_gradient) {
    // LAMMPS keeps x as one contiguous (nmax, 3) block behind x[0]
    const double* x = lmp_->atom->x[0];
    if (dtype_ == torch::kFloat32) {
        copy_positions<float>(x, lammps_index, positions_buffer_);
    } else {
        copy_positions<double>(x, lammps_index, positions_buffer_);
    }
    positions = leaf_on(positions_buffer_.rows(), device_);

    // periodic along the folded axes only
    torch::Tensor pbc;
    cell = box_cell(lmp_->domain, layout_.folded, pbc).to(device_);
    if (need_cell_gradient) {
        cell.requires_grad_(true);
    }
    system = torch::make_intrusive<metatomic_torch::SystemHolder>(
        types_, positions, cell.to(dtype_), pbc.to(device_)
    );
}

template <typename T>
static inline void write_vector(T* vector, int sign, const double* d) {
    vector[0] = static_cast<T>(sign * d[0]);
    vector[1] = static_cast<T>(sign * d[1]);
    vector[2] = static_cast<T>(sign * d[2]);
}

template <typename T, bool SHIFTS, bool FULL>
void SystemAdaptor::fill_block(size_t request_index) {
    static const int32_t no_shift[3] = {0, 0, 0};
    constexpr int64_t per_pair = FULL ? 2 : 1;
    auto& pairs = pairs_[request_index];
    const double cutoff = requests_[request_index].cutoff;
    const double cutoff2 = cutoff * cutoff;
    const double* x = lmp_->atom->x[0];
    const int64_t n_near = static_cast<int64_t>(pairs.near.size()) / 2 - PREFETCH;
    const int64_t room = pairs.settled + per_pair * n_near;
    pairs.samples.start(room, pairs.settled);
    pairs.atoms.start(room, pairs.settled);
    pairs.vectors.start(room);

    // settled pairs: their vectors only (a reversed pair's atoms are (b, a))
    const int32_t* atom = pairs.atoms.data<int32_t>();
    T* vector = pairs.vectors.data<T>();
    for (int64_t p = 0; p < pairs.settled; p++) {
        const double* xa = x + 3 * static_cast<int64_t>(atom[2 * p]);
        const double* xb = x + 3 * static_cast<int64_t>(atom[2 * p + 1]);
        const double d[3] = {xb[0] - xa[0], xb[1] - xa[1], xb[2] - xa[2]};
        write_vector(vector + 3 * p, 1, d);
    }

    // near candidates: each is written at row n, which only moves on for pairs
    // inside the cutoff (no branch on the distance)
    int32_t* sample = pairs.samples.data<int32_t>();
    int32_t* atoms = pairs.atoms.data<int32_t>();
    const int* near = pairs.near.data();
    int64_t n = pairs.settled;
    for (int64_t c = 0; c < n_near; c++) {
        // the coordinates are gathered from all over x: ask for them early
        __builtin_prefetch(x + 3 * static_cast<int64_t>(near[2 * (c + PREFETCH) + 1]));
        const int a = near[2 * c];
        const int b = near[2 * c + 1];
        const double* xa = x + 3 * static_cast<int64_t>(a);
        const double* xb = x + 3 * static_cast<int64_t>(b);
        const double d[3] = {xb[0] - xa[0], xb[1] - xa[1], xb[2] - xa[2]};
        const bool inside = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < cutoff2;
        const int32_t i = pair_index_[a];
        const int32_t j = pair_index_[b];
        const int32_t* s = SHIFTS ? &image_shift_[3 * static_cast<size_t>(b)] : no_shift;
        write_sample(sample + 5 * n, atoms + 2 * n, a, b, i, j, s, 1);
        write_vector(vector + 3 * n, 1, d);
        if (FULL) {
            write_sample(sample + 5 * (n + 1), atoms + 2 * (n + 1), b, a, j, i, s, -1);
            write_vector(vector + 3 * (n + 1), -1, d);
        }
        n += inside ? per_pair : 0;
    }
    pairs.samples.set_count(n);
    pairs.atoms.set_count(n);
    pairs.vectors.set_count(n);
}

void SystemAdaptor::build_block(size_t request_index) {
    const bool full = requests_[request_index].options->full_list();
    const bool f32 = dtype_ == torch::kFloat32;
    // the model's dtype, the layout and the list kind are fixed for the run:
    // one loop each, without a test per pair
    if (layout_.any_folded()) {
        if (full) {
            f32 ? fill_block<float, true, true>(request_index) : fill_block<double, true, true>(request_index);
        } else {
            f32 ? fill_block<float, true, false>(request_index) : fill_block<double, true, false>(request_index);
        }
    } else {
        if (full) {
            f32 ? fill_block<float, false, true>(request_index) : fill_block<double, false, true>(request_index);
        } else {
            f32 ? fill_block<float, false, false>(request_index) : fill_block<double, false, false>(request_index);
        }
    }
    auto& block = blocks[request_index];
    auto& pairs = pairs_[request_index];
    block.atoms = pairs.atoms.rows();
    const int64_t n_pairs = block.size();
    block.vectors = leaf_on(pairs.vectors.rows(), device_);
    auto sample_labels = make_labels(
        {"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"},
        pairs.samples.rows()
    );
    if (!device_.is_cpu()) {
        sample_labels = sample_labels->to(device_);
    }
    auto neighbors = torch::make_intrusive<metatensor_torch::TensorBlockHolder>(
        block.vectors.reshape({n_pairs, 3, 1}),
        sample_labels,
        std::vector<metatensor_torch::Labels>{xyz_},
        distance_
    );
    system->add_neighbor_list(requests_[request_index].options, neighbors);
}

std::array<int64_t, 2> SystemAdaptor::pair_counts() const {
    std::array<int64_t, 2> counts = {0, 0};
    for (const auto& pairs: pairs_) {
        const int64_t n = pairs.samples.count();
        if (n == 0) {
            continue;
        }
        const int32_t* sample = pairs.samples.rows().data_ptr<int32_t>();
        counts[0] += n;
        for (int64_t p = 0; p < n; p++) {
            counts[1] += (sample[5 * p] >= n_local) & (sample[5 * p + 1] >= n_local);
        }
    }
    return counts;
}

void SystemAdaptor::build_selected_atoms() {
    if (!layout_.keeps_ghosts) {
        selected_atoms = torch::nullopt;
        return;
    }
    if (selected_count_ == n_local && selected_atoms.has_value()) {
        return;
    }
    auto values = torch::zeros({n_local, 2}, torch::TensorOptions().dtype(torch::kInt32));
    values.index_put_({torch::indexing::Slice(), 1}, torch::arange(n_local, torch::TensorOptions().dtype(torch::kInt32)));
    selected_atoms = make_labels({"system", "atom"}, values)->to(device_);
    selected_count_ = n_local;
}

}  // namespace mlipdrive

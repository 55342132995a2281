/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_system.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "atom.h"
#include "domain.h"
#include "lammps.h"
#include "neigh_list.h"

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

SystemAdaptor::SystemAdaptor(
    LAMMPS* lmp,
    std::vector<PairRequest> requests,
    bool periodic,
    torch::Device device,
    torch::ScalarType dtype
):
    lmp_(lmp),
    requests_(std::move(requests)),
    periodic_(periodic),
    device_(device),
    dtype_(dtype) {
    auto int_options = torch::TensorOptions().dtype(torch::kInt32);
    xyz_ = make_labels({"xyz"}, torch::tensor({0, 1, 2}, int_options).reshape({3, 1}))->to(device_);
    distance_ = make_labels({"distance"}, torch::zeros({1, 1}, int_options))->to(device_);
    blocks.resize(requests_.size());
}

void SystemAdaptor::select_atoms(const std::vector<int32_t>& atomic_numbers) {
    const int nlocal = lmp_->atom->nlocal;
    const int nall = nlocal + lmp_->atom->nghost;
    const int* type = lmp_->atom->type;
    // pair_coeff NULL leaves types to other styles under hybrid
    const int n_considered = periodic_ ? nlocal : nall;
    system_index_.assign(nall, -1);
    lammps_index.clear();
    species_.clear();
    n_local = 0;
    for (int i = 0; i < n_considered; i++) {
        const int32_t z = atomic_numbers[type[i]];
        if (z >= 0) {
            system_index_[i] = static_cast<int>(lammps_index.size());
            lammps_index.push_back(i);
            species_.push_back(z);
            n_local += i < nlocal ? 1 : 0;
        }
    }
    types_ = torch::tensor(species_, torch::TensorOptions().dtype(torch::kInt32)).to(device_);
}

bool SystemAdaptor::refresh_species(const std::vector<int32_t>& atomic_numbers) {
    const int nlocal = lmp_->atom->nlocal;
    const int n_considered = periodic_ ? nlocal : nlocal + lmp_->atom->nghost;
    if (static_cast<int>(system_index_.size()) < n_considered) {
        return false;
    }
    const int* type = lmp_->atom->type;
    bool changed = false;
    for (int i = 0; i < n_considered; i++) {
        const int32_t z = atomic_numbers[type[i]];
        const int s = system_index_[i];
        if ((z >= 0) != (s >= 0)) {
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

std::vector<int> SystemAdaptor::local_owners() const {
    const int nlocal = lmp_->atom->nlocal;
    const tagint* tag = lmp_->atom->tag;
    tagint max_tag = 0;
    for (int i = 0; i < nlocal; i++) {
        max_tag = std::max(max_tag, tag[i]);
    }
    std::vector<int> owner_of_tag(static_cast<size_t>(max_tag) + 1, -1);
    for (int i = 0; i < nlocal; i++) {
        owner_of_tag[tag[i]] = i;
    }
    return owner_of_tag;
}

void SystemAdaptor::collect_candidates(NeighList* list) {
    candidate_first_.clear();
    candidate_second_.clear();
    candidate_owner_.clear();
    candidate_shift_.clear();
    candidate_in_half_.clear();
    const std::vector<int> owner_of_tag = periodic_ ? local_owners() : std::vector<int>();

    // ghosts layout: the list also has the ghosts' own pairs (REQ_GHOST)
    const int n_listed = list->inum + (periodic_ ? 0 : list->gnum);
    for (int ii = 0; ii < n_listed; ii++) {
        const int a = list->ilist[ii];
        if (system_index_[a] < 0) {
            continue;
        }
        const int* neighbors = list->firstneigh[a];
        const int count = list->numneigh[a];
        for (int jj = 0; jj < count; jj++) {
            const int b = neighbors[jj] & NEIGHMASK;
            if (periodic_) {
                add_periodic_candidate(a, b, owner_of_tag);
            } else if (b > a && system_index_[b] >= 0) {
                // each unordered pair once: a local-ghost pair is in the local
                // atom's list, a ghost-ghost or local-local pair in both
                candidate_first_.push_back(a);
                candidate_second_.push_back(b);
            }
        }
    }
}

void SystemAdaptor::add_periodic_candidate(int a, int b, const std::vector<int>& owner_of_tag) {
    const int nlocal = lmp_->atom->nlocal;
    double** x = lmp_->atom->x;
    int owner = b;
    if (b >= nlocal) {
        const tagint tag_b = lmp_->atom->tag[b];
        owner = tag_b < static_cast<tagint>(owner_of_tag.size()) ? owner_of_tag[tag_b] : -1;
        if (owner < 0) {
            throw std::runtime_error(
                "ghost atom with ID " + std::to_string(tag_b) + " has no local owner; "
                "the periodic layout needs every atom on one MPI rank (use 'mode ghosts')"
            );
        }
    }
    if (system_index_[owner] < 0) {
        return;
    }
    // fractional shift through the inverse of LAMMPS's shape matrix
    // h = (xprd, yprd, zprd, yz, xz, xy): cell rows a=(xprd,0,0),
    // b=(xy,yprd,0), c=(xz,yz,zprd); non-periodic axes have no images
    const double* h = lmp_->domain->h;
    const double* h_inv = lmp_->domain->h_inv;
    const double delta[3] = {x[b][0] - x[owner][0], x[b][1] - x[owner][1], x[b][2] - x[owner][2]};
    const int32_t shift[3] = {
        static_cast<int32_t>(std::lround(h_inv[0] * delta[0] + h_inv[5] * delta[1] + h_inv[4] * delta[2])),
        static_cast<int32_t>(std::lround(h_inv[1] * delta[1] + h_inv[3] * delta[2])),
        static_cast<int32_t>(std::lround(h_inv[2] * delta[2])),
    };
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
            "of its owner; use 'mode ghosts' in pair_style mlipdrive"
        );
    }
    const int a_sys = system_index_[a];
    const int owner_sys = system_index_[owner];
    // half lists keep one of (i, j, S) and (j, i, -S), as in the Python driver
    const int first_nonzero = shift[0] != 0 ? shift[0] : (shift[1] != 0 ? shift[1] : shift[2]);
    const bool in_half = a_sys < owner_sys || (a_sys == owner_sys && first_nonzero > 0);

    candidate_first_.push_back(a);
    candidate_second_.push_back(b);
    candidate_owner_.push_back(owner_sys);
    candidate_shift_.insert(candidate_shift_.end(), shift, shift + 3);
    candidate_in_half_.push_back(in_half ? 1 : 0);
}

void SystemAdaptor::update(NeighList* list, bool list_rebuilt, const std::vector<int32_t>& atomic_numbers,
                           bool need_cell_gradient) {
    if (list_rebuilt || !refresh_species(atomic_numbers)) {
        select_atoms(atomic_numbers);
        collect_candidates(list);
    }
    double** x = lmp_->atom->x;
    const size_t n_candidates = candidate_first_.size();
    candidate_distance2_.resize(n_candidates);
    for (size_t c = 0; c < n_candidates; c++) {
        const double* xa = x[candidate_first_[c]];
        const double* xb = x[candidate_second_[c]];
        const double d0 = xb[0] - xa[0];
        const double d1 = xb[1] - xa[1];
        const double d2 = xb[2] - xa[2];
        candidate_distance2_[c] = d0 * d0 + d1 * d1 + d2 * d2;
    }
    build_positions_and_cell(need_cell_gradient);
    for (size_t k = 0; k < requests_.size(); k++) {
        build_block(k);
    }
    build_selected_atoms();
}

void SystemAdaptor::build_positions_and_cell(bool need_cell_gradient) {
    double** x = lmp_->atom->x;
    const auto n_atoms = static_cast<int64_t>(lammps_index.size());
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto positions_cpu = torch::empty({n_atoms, 3}, f64);
    auto positions_data = positions_cpu.data_ptr<double>();
    for (int64_t s = 0; s < n_atoms; s++) {
        const double* xi = x[lammps_index[s]];
        positions_data[3 * s + 0] = xi[0];
        positions_data[3 * s + 1] = xi[1];
        positions_data[3 * s + 2] = xi[2];
    }
    positions = positions_cpu.to(device_).requires_grad_(true);

    // ghosts layout: no periodicity at all. Periodic layout: the box, with a zero
    // cell vector along each non-periodic axis (metatomic requires it)
    auto cell_cpu = torch::zeros({3, 3}, f64);
    auto pbc = torch::zeros({3}, torch::TensorOptions().dtype(torch::kBool));
    if (periodic_) {
        const auto* domain = lmp_->domain;
        const double* h = domain->h;
        const bool periodic_axis[3] = {domain->xperiodic != 0, domain->yperiodic != 0, domain->zperiodic != 0};
        const double rows[3][3] = {{h[0], 0.0, 0.0}, {h[5], h[1], 0.0}, {h[4], h[3], h[2]}};
        auto cell_data = cell_cpu.accessor<double, 2>();
        for (int axis = 0; axis < 3; axis++) {
            pbc[axis] = periodic_axis[axis];
            for (int k = 0; k < 3 && periodic_axis[axis]; k++) {
                cell_data[axis][k] = rows[axis][k];
            }
        }
    }
    cell = cell_cpu.to(device_);
    if (need_cell_gradient) {
        cell.requires_grad_(true);
    }
    system = torch::make_intrusive<metatomic_torch::SystemHolder>(
        types_, positions.to(dtype_), cell.to(dtype_), pbc.to(device_)
    );
}

void SystemAdaptor::build_block(size_t request_index) {
    const auto& request = requests_[request_index];
    auto& block = blocks[request_index];
    const bool full = request.options->full_list();
    const double cutoff2 = request.cutoff * request.cutoff;
    double** x = lmp_->atom->x;
    block.first.clear();
    block.second.clear();
    block.vectors_cpu.clear();
    std::vector<int32_t> samples;
    const size_t n_candidates = candidate_first_.size();
    samples.reserve(5 * n_candidates * (full && !periodic_ ? 2 : 1));

    auto add_pair = [&](int a, int b, int32_t a_sys, int32_t b_sys, const int32_t* shift) {
        samples.insert(samples.end(), {a_sys, b_sys, shift[0], shift[1], shift[2]});
        block.first.push_back(a);
        block.second.push_back(b);
        block.vectors_cpu.insert(block.vectors_cpu.end(), {x[b][0] - x[a][0], x[b][1] - x[a][1], x[b][2] - x[a][2]});
    };
    static const int32_t no_shift[3] = {0, 0, 0};
    for (size_t c = 0; c < n_candidates; c++) {
        if (candidate_distance2_[c] >= cutoff2 || (periodic_ && !full && !candidate_in_half_[c])) {
            continue;
        }
        const int a = candidate_first_[c];
        const int b = candidate_second_[c];
        if (periodic_) {
            add_pair(a, b, system_index_[a], candidate_owner_[c], &candidate_shift_[3 * c]);
            continue;
        }
        add_pair(a, b, system_index_[a], system_index_[b], no_shift);
        if (full) {
            add_pair(b, a, system_index_[b], system_index_[a], no_shift);
        }
    }

    const auto n_pairs = static_cast<int64_t>(block.first.size());
    auto samples_tensor = torch::from_blob(samples.data(), {n_pairs, 5}, torch::kInt32).clone();
    auto vectors_cpu = torch::from_blob(block.vectors_cpu.data(), {n_pairs, 3}, torch::kFloat64);
    block.vectors = vectors_cpu.to(device_, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);
    auto sample_labels = make_labels(
        {"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"}, samples_tensor
    )->to(device_);
    auto neighbors = torch::make_intrusive<metatensor_torch::TensorBlockHolder>(
        block.vectors.to(dtype_).reshape({n_pairs, 3, 1}),
        sample_labels,
        std::vector<metatensor_torch::Labels>{xyz_},
        distance_
    );
    system->add_neighbor_list(request.options, neighbors);
}

void SystemAdaptor::build_selected_atoms() {
    if (periodic_) {
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

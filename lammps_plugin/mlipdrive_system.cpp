/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_system.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "atom.h"
#include "domain.h"
#include "lammps.h"
#include "neigh_list.h"

using namespace LAMMPS_NS;

namespace mlipdrive {

static metatensor_torch::Labels make_labels(std::vector<std::string> names, torch::Tensor values, bool unique) {
    auto list = c10::List<std::string>();
    for (auto& name: names) {
        list.push_back(std::move(name));
    }
    if (unique) {
        return torch::make_intrusive<metatensor_torch::LabelsHolder>(
            torch::IValue(list), std::move(values), metatensor::assume_unique{}
        );
    }
    return torch::make_intrusive<metatensor_torch::LabelsHolder>(torch::IValue(list), std::move(values));
}

SystemAdaptor::SystemAdaptor(
    LAMMPS* lmp,
    std::vector<PairRequest> requests,
    bool periodic,
    bool ghost_pairs,
    int layers,
    torch::Device device,
    torch::ScalarType dtype
):
    lmp_(lmp),
    requests_(std::move(requests)),
    periodic_(periodic),
    ghost_pairs_(ghost_pairs),
    layers_(std::max(1, layers)),
    device_(device),
    dtype_(dtype) {
    auto int_options = torch::TensorOptions().dtype(torch::kInt32);
    xyz_ = make_labels({"xyz"}, torch::tensor({0, 1, 2}, int_options).reshape({3, 1}), true)->to(device_);
    distance_ = make_labels({"distance"}, torch::zeros({1, 1}, int_options), true)->to(device_);
    blocks.resize(requests_.size());
    for (const auto& request: requests_) {
        max_cutoff2_ = std::max(max_cutoff2_, request.cutoff * request.cutoff);
    }
}

void SystemAdaptor::select_ghosts(const std::vector<int32_t>& atomic_numbers) {
    const int nlocal = lmp_->atom->nlocal;
    const int nall = nlocal + lmp_->atom->nghost;
    const int* type = lmp_->atom->type;
    const int far = std::numeric_limits<int>::max() / 2;

    // multi-source breadth-first search over the pairs shorter than the largest
    // cutoff: local atoms are 0 hops away, their neighbours 1, ...
    hops_.assign(nall, far);
    for (int i = 0; i < nlocal; i++) {
        if (atomic_numbers[type[i]] >= 0) {
            hops_[i] = 0;
        }
    }
    const size_t n_candidates = candidate_first_.size();
    for (int level = 0; level < layers_; level++) {
        for (size_t c = 0; c < n_candidates; c++) {
            if (candidate_distance2_[c] >= max_cutoff2_) {
                continue;
            }
            int& ha = hops_[candidate_first_[c]];
            int& hb = hops_[candidate_second_[c]];
            if (ha == level && hb > level + 1) {
                hb = level + 1;
            } else if (hb == level && ha > level + 1) {
                ha = level + 1;
            }
        }
    }

    system_index_.assign(nall, -1);
    lammps_index.clear();
    n_local = 0;
    for (int i = 0; i < nall; i++) {
        if (hops_[i] <= layers_ && atomic_numbers[type[i]] >= 0) {
            system_index_[i] = static_cast<int>(lammps_index.size());
            lammps_index.push_back(i);
            n_local += i < nlocal ? 1 : 0;
        }
    }
    auto types_cpu = torch::empty({static_cast<int64_t>(lammps_index.size())}, torch::kInt32);
    auto types_data = types_cpu.data_ptr<int32_t>();
    for (size_t s = 0; s < lammps_index.size(); s++) {
        types_data[s] = atomic_numbers[type[lammps_index[s]]];
    }
    types_ = types_cpu.to(device_);
}

void SystemAdaptor::rebuild_candidates(NeighList* list, const std::vector<int32_t>& atomic_numbers) {
    const int nlocal = lmp_->atom->nlocal;
    const int nall = nlocal + lmp_->atom->nghost;
    const int* type = lmp_->atom->type;
    double** x = lmp_->atom->x;

    // which LAMMPS atoms are in the System: atoms whose type the model handles
    // (pair_coeff NULL leaves types to other styles under hybrid), local first
    const int n_candidates_atoms = periodic_ ? nlocal : nall;
    system_index_.assign(nall, -1);
    lammps_index.clear();
    n_local = 0;
    for (int i = 0; i < n_candidates_atoms; i++) {
        if (atomic_numbers[type[i]] >= 0) {
            system_index_[i] = static_cast<int>(lammps_index.size());
            lammps_index.push_back(i);
            if (i < nlocal) {
                n_local += 1;
            }
        }
    }
    auto types_cpu = torch::empty({static_cast<int64_t>(lammps_index.size())}, torch::kInt32);
    auto types_data = types_cpu.data_ptr<int32_t>();
    for (size_t s = 0; s < lammps_index.size(); s++) {
        types_data[s] = atomic_numbers[type[lammps_index[s]]];
    }
    types_ = types_cpu.to(device_);

    // owners of ghost atoms, by atom ID (periodic layout, one rank: every atom
    // has its owner among the local atoms)
    std::vector<int> owner_of_tag;
    if (periodic_) {
        const tagint* tag = lmp_->atom->tag;
        tagint max_tag = 0;
        for (int i = 0; i < nlocal; i++) {
            max_tag = std::max(max_tag, tag[i]);
        }
        owner_of_tag.assign(static_cast<size_t>(max_tag) + 1, -1);
        for (int i = 0; i < nlocal; i++) {
            owner_of_tag[tag[i]] = i;
        }
    }

    candidate_first_.clear();
    candidate_second_.clear();
    candidate_owner_.clear();
    candidate_shift_.clear();
    candidate_in_half_.clear();

    const int n_listed = list->inum + (ghost_pairs_ && !periodic_ ? list->gnum : 0);
    const double* h = lmp_->domain->h;
    const double* h_inv = lmp_->domain->h_inv;
    for (int ii = 0; ii < n_listed; ii++) {
        const int a = list->ilist[ii];
        if (system_index_[a] < 0) {
            continue;
        }
        const int* neighbors = list->firstneigh[a];
        const int count = list->numneigh[a];
        for (int jj = 0; jj < count; jj++) {
            const int b = neighbors[jj] & NEIGHMASK;
            if (!periodic_) {
                // each unordered pair once; a local-ghost pair always comes from
                // the local atom's list, so a < b keeps it
                if (b <= a || system_index_[b] < 0) {
                    continue;
                }
                candidate_first_.push_back(a);
                candidate_second_.push_back(b);
                continue;
            }

            // periodic layout: replace the image b by its owner and a cell shift
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
                continue;
            }
            double delta[3] = {x[b][0] - x[owner][0], x[b][1] - x[owner][1], x[b][2] - x[owner][2]};
            // fractional shift through the inverse of LAMMPS's shape matrix
            // h = (xprd, yprd, zprd, yz, xz, xy): cell rows a=(xprd,0,0),
            // b=(xy,yprd,0), c=(xz,yz,zprd)
            double sa = h_inv[0] * delta[0] + h_inv[5] * delta[1] + h_inv[4] * delta[2];
            double sb = h_inv[1] * delta[1] + h_inv[3] * delta[2];
            double sc = h_inv[2] * delta[2];
            int32_t shift[3] = {
                static_cast<int32_t>(std::lround(sa)),
                static_cast<int32_t>(std::lround(sb)),
                static_cast<int32_t>(std::lround(sc)),
            };
            double image[3] = {
                shift[0] * h[0] + shift[1] * h[5] + shift[2] * h[4],
                shift[1] * h[1] + shift[2] * h[3],
                shift[2] * h[2],
            };
            double mismatch = std::fabs(image[0] - delta[0]) + std::fabs(image[1] - delta[1]) + std::fabs(image[2] - delta[2]);
            if (mismatch > 1e-6 * (h[0] + h[1] + h[2])) {
                throw std::runtime_error(
                    "ghost atom " + std::to_string(lmp_->atom->tag[b]) + " is not a periodic image "
                    "of its owner; use 'mode ghosts' in pair_style mlipdrive"
                );
            }
            const int a_sys = system_index_[a];
            const int owner_sys = system_index_[owner];
            // half lists keep one of (i, j, S) and (j, i, -S), as in the Python driver
            int first_nonzero = shift[0] != 0 ? shift[0] : (shift[1] != 0 ? shift[1] : shift[2]);
            bool in_half = a_sys < owner_sys || (a_sys == owner_sys && first_nonzero > 0);

            candidate_first_.push_back(a);
            candidate_second_.push_back(b);
            candidate_owner_.push_back(owner_sys);
            candidate_shift_.insert(candidate_shift_.end(), shift, shift + 3);
            candidate_in_half_.push_back(in_half ? 1 : 0);
        }
    }
}

void SystemAdaptor::update(NeighList* list, bool rebuilt, const std::vector<int32_t>& atomic_numbers, bool need_cell_gradient) {
    if (rebuilt) {
        rebuild_candidates(list, atomic_numbers);
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
    if (!periodic_) {
        select_ghosts(atomic_numbers);
    }
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

    auto cell_cpu = torch::zeros({3, 3}, f64);
    auto pbc = torch::zeros({3}, torch::TensorOptions().dtype(torch::kBool));
    if (periodic_) {
        const double* h = lmp_->domain->h;
        auto cell_data = cell_cpu.accessor<double, 2>();
        cell_data[0][0] = h[0];
        cell_data[1][0] = h[5];
        cell_data[1][1] = h[1];
        cell_data[2][0] = h[4];
        cell_data[2][1] = h[3];
        cell_data[2][2] = h[2];
        pbc[0] = static_cast<bool>(lmp_->domain->xperiodic);
        pbc[1] = static_cast<bool>(lmp_->domain->yperiodic);
        pbc[2] = static_cast<bool>(lmp_->domain->zperiodic);
    }
    cell = cell_cpu.to(device_);
    if (need_cell_gradient) {
        cell.requires_grad_(true);
    }

    auto positions_model = positions.to(dtype_);
    auto cell_model = cell.to(dtype_);
    system = torch::make_intrusive<metatomic_torch::SystemHolder>(types_, positions_model, cell_model, pbc.to(device_));

    for (size_t k = 0; k < requests_.size(); k++) {
        const auto& request = requests_[k];
        const bool full = request.options->full_list();
        const double cutoff2 = request.cutoff * request.cutoff;
        auto& block = blocks[k];
        block.first.clear();
        block.second.clear();
        block.vectors_cpu.clear();
        std::vector<int32_t> samples;
        samples.reserve(5 * n_candidates * (full && !periodic_ ? 2 : 1));

        for (size_t c = 0; c < n_candidates; c++) {
            const int a = candidate_first_[c];
            const int b = candidate_second_[c];
            if (periodic_ && !full && !candidate_in_half_[c]) {
                continue;
            }
            if (candidate_distance2_[c] >= cutoff2) {
                continue;
            }
            if (!periodic_ && std::min(hops_[a], hops_[b]) > layers_ - 1) {
                // both atoms too far from every local atom to matter
                continue;
            }
            const double d0 = x[b][0] - x[a][0];
            const double d1 = x[b][1] - x[a][1];
            const double d2 = x[b][2] - x[a][2];
            const int a_sys = system_index_[a];
            if (periodic_) {
                const int32_t* shift = &candidate_shift_[3 * c];
                samples.insert(samples.end(), {a_sys, candidate_owner_[c], shift[0], shift[1], shift[2]});
                block.first.push_back(a);
                block.second.push_back(b);
                block.vectors_cpu.insert(block.vectors_cpu.end(), {d0, d1, d2});
                continue;
            }
            const int b_sys = system_index_[b];
            samples.insert(samples.end(), {a_sys, b_sys, 0, 0, 0});
            block.first.push_back(a);
            block.second.push_back(b);
            block.vectors_cpu.insert(block.vectors_cpu.end(), {d0, d1, d2});
            if (full) {
                samples.insert(samples.end(), {b_sys, a_sys, 0, 0, 0});
                block.first.push_back(b);
                block.second.push_back(a);
                block.vectors_cpu.insert(block.vectors_cpu.end(), {-d0, -d1, -d2});
            }
        }

        const auto n_pairs = static_cast<int64_t>(block.first.size());
        auto samples_tensor = torch::from_blob(samples.data(), {n_pairs, 5}, torch::kInt32).clone();
        auto vectors_cpu = torch::from_blob(block.vectors_cpu.data(), {n_pairs, 3}, f64);
        block.vectors = vectors_cpu.to(device_, /*non_blocking=*/false, /*copy=*/true).requires_grad_(true);

        auto sample_labels = make_labels(
            {"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"},
            samples_tensor,
            true
        )->to(device_);
        auto neighbors = torch::make_intrusive<metatensor_torch::TensorBlockHolder>(
            block.vectors.to(dtype_).reshape({n_pairs, 3, 1}),
            sample_labels,
            std::vector<metatensor_torch::Labels>{xyz_},
            distance_
        );
        system->add_neighbor_list(request.options, neighbors);
    }

    if (periodic_) {
        selected_atoms = torch::nullopt;
    } else if (selected_count_ != n_local || !selected_atoms.has_value()) {
        auto values = torch::zeros({n_local, 2}, torch::TensorOptions().dtype(torch::kInt32));
        values.index_put_({torch::indexing::Slice(), 1}, torch::arange(n_local, torch::TensorOptions().dtype(torch::kInt32)));
        selected_atoms = make_labels({"system", "atom"}, values, true)->to(device_);
        selected_count_ = n_local;
    }
}

}  // namespace mlipdrive

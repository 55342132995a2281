/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * See mlipdrive_uncertainty.h.
 */
#include "mlipdrive_uncertainty.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace mlipdrive {

namespace {

/// Python's format(value, ".3g")
std::string three_digits(double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.3g", value);
    return buffer;
}

/// this rank's atoms above the threshold, largest first, at most WORST_SHOWN,
/// as (value, id) pairs padded with (-1, -1)
std::vector<double> local_worst(const std::vector<double>& values, const std::vector<long>& ids,
                                double threshold, long& count) {
    std::vector<std::pair<double, long>> above;
    for (size_t i = 0; i < values.size(); i++) {
        if (values[i] > threshold) {
            above.emplace_back(values[i], ids[i]);
        }
    }
    count = static_cast<long>(above.size());
    std::stable_sort(above.begin(), above.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<double> packed(2 * WORST_SHOWN, -1.0);
    for (size_t k = 0; k < above.size() && k < static_cast<size_t>(WORST_SHOWN); k++) {
        packed[2 * k] = above[k].first;
        packed[2 * k + 1] = static_cast<double>(above[k].second);
    }
    return packed;
}

}  // namespace

UncertaintyReport gather_uncertainty(MPI_Comm world, const std::vector<double>& values,
                                     const std::vector<long>& ids, double threshold) {
    UncertaintyReport report;
    long count = 0;
    auto packed = local_worst(values, ids, threshold, count);
    MPI_Allreduce(&count, &report.count, 1, MPI_LONG, MPI_SUM, world);
    if (report.count == 0) {
        return report;
    }
    int rank = 0, size = 1;
    MPI_Comm_rank(world, &rank);
    MPI_Comm_size(world, &size);
    std::vector<double> all(rank == 0 ? packed.size() * size : 0);
    MPI_Gather(packed.data(), static_cast<int>(packed.size()), MPI_DOUBLE, all.data(),
               static_cast<int>(packed.size()), MPI_DOUBLE, 0, world);
    if (rank != 0) {
        return report;
    }
    std::vector<std::pair<double, long>> worst;
    for (size_t k = 0; k + 1 < all.size(); k += 2) {
        if (all[k + 1] >= 0) {
            worst.emplace_back(all[k], static_cast<long>(all[k + 1]));
        }
    }
    // largest first; equal values by atom ID (ranks hold atoms in any order)
    std::sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (size_t k = 0; k < worst.size() && k < static_cast<size_t>(WORST_SHOWN); k++) {
        report.worst += (k ? ", " : "") + std::string("atom ") + std::to_string(worst[k].second) + " (" +
                        three_digits(worst[k].first) + " eV)";
    }
    return report;
}

}  // namespace mlipdrive

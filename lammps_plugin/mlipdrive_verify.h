/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * `verify on`: at every step the System kept from earlier steps (pairs,
 * representatives, types, settled/near sets: see mlipdrive_system.h) is
 * compared with one built from scratch on the same LAMMPS frame by a second
 * SystemAdaptor (its copies of an atom ID chained by a hash of its own, not
 * LAMMPS's atom map).
 *
 * The two need not be equal to the bit to be the same input: where ghosts fold
 * (the mixed layout), the copy that represents an atom is the one nearest the
 * middle of the box, and atoms move between neighbour-list builds, so a System
 * built later may pick another image of the same atom. Each atom of the fresh
 * System is therefore matched with the kept atom that stands for the same
 * LAMMPS atom, and the two must agree up to a translation T by whole cell
 * vectors along the folded axes: same atom ID, type, local or ghost, position
 * + T; each pair (i, j, S) of the fresh System is compared as (i', j', S + T_i
 * - T_j) in the kept one (half lists in one orientation), its vector to the
 * rounding of the model's dtype. Where ghosts out of every local atom's reach
 * are left out (pruned layouts), each System holds those within reach at its
 * own last sort of the pairs: only the local atoms and the atoms of a pair are
 * compared, which with the pairs is everything a local energy depends on.
 */
#pragma once

#include <string>

#include "mlipdrive_system.h"

namespace mlipdrive {

/// The first difference between what the model sees in `kept` and in `fresh`
/// (both updated on the current LAMMPS frame), in words; empty if none.
std::string first_difference(const SystemAdaptor& kept, const SystemAdaptor& fresh, LAMMPS_NS::LAMMPS* lmp);

}  // namespace mlipdrive

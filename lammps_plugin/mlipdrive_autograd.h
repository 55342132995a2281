/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Operators without a C++ autograd formula. Some TorchScript extensions
 * register the backward of their operators from Python only (sphericart-torch
 * 2.x does, in sphericart/torch/register.py): inside lmp, where no Python runs,
 * torch then backpropagates through them as if they were constants and the
 * forces silently lose their part. Two answers:
 *
 * - provide_extension_autograd(): C++ backward formulas for the operators we
 *   know (sphericart_torch's spherical and solid harmonics), registered only
 *   where the operator exists and has no autograd kernel;
 * - MissingAutogradCheck: any other such operator turns torch's warning into an
 *   error, instead of wrong forces.
 */
#pragma once

#include <string>

#include <c10/util/Exception.h>

namespace mlipdrive {

/// Register C++ autograd kernels for the known extension operators that are
/// loaded and lack one. Call after the model (and its extensions) is loaded.
void provide_extension_autograd();

/// While alive, torch's "autograd kernel was not registered" warnings are
/// recorded instead of printed; throw_if_missing() then throws.
class MissingAutogradCheck : public c10::WarningHandler {
public:
    MissingAutogradCheck();
    ~MissingAutogradCheck() override;
    void process(const c10::Warning& warning) override;
    /// throw a std::runtime_error naming the operator, if one was seen
    void throw_if_missing() const;

private:
    c10::WarningHandler* previous_;
    std::string missing_;
};

}  // namespace mlipdrive

/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 */
#include "mlipdrive_autograd.h"

#include <memory>
#include <stdexcept>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/script.h>
#include <torch/library.h>

namespace mlipdrive {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// `NAMESPACE::NAME(Tensor xyz, int l_max)` and its `NAME_with_gradients`,
/// which also returns d value / d xyz, shape (n, 3, (l_max + 1)^2).
struct HarmonicsOps {
    const char* name;
    const char* with_gradients;
};

constexpr HarmonicsOps HARMONICS[] = {
    {"sphericart_torch::spherical_harmonics", "sphericart_torch::spherical_harmonics_with_gradients"},
    {"sphericart_torch::solid_harmonics", "sphericart_torch::solid_harmonics_with_gradients"},
};

template <int Index>
class HarmonicsFunction : public torch::autograd::Function<HarmonicsFunction<Index>> {
public:
    static torch::Tensor forward(AutogradContext* ctx, torch::Tensor xyz, int64_t l_max) {
        static auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(HARMONICS[Index].name, "")
                             .typed<torch::Tensor(torch::Tensor, int64_t)>();
        ctx->save_for_backward({xyz});
        ctx->saved_data["l_max"] = l_max;
        at::AutoDispatchBelowADInplaceOrView below_autograd;  // the CPU/CUDA kernel, not this one again
        return op.call(xyz, l_max);
    }

    static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
        static auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(HARMONICS[Index].with_gradients, "")
                             .typed<std::tuple<torch::Tensor, torch::Tensor>(torch::Tensor, int64_t)>();
        const auto xyz = ctx->get_saved_variables()[0];
        const auto l_max = ctx->saved_data["l_max"].toInt();
        at::AutoDispatchBelowADInplaceOrView below_autograd;
        const auto gradients = std::get<1>(op.call(xyz, l_max));
        auto xyz_grad = torch::sum(grad_outputs[0].unsqueeze(1) * gradients, 2);
        return {xyz_grad, torch::Tensor()};
    }
};

template <int Index>
torch::Tensor harmonics_autograd(torch::Tensor xyz, int64_t l_max) {
    return HarmonicsFunction<Index>::apply(xyz, l_max);
}

bool needs_autograd(const char* name) {
    auto op = c10::Dispatcher::singleton().findOp(c10::OperatorName(name, ""));
    return op.has_value() && op->hasSchema() && !op->hasKernelForDispatchKey(c10::DispatchKey::AutogradCPU);
}

const char* const MISSING = "an autograd kernel was not registered";

}  // namespace

void provide_extension_autograd() {
    static std::unique_ptr<torch::Library> library;
    if (needs_autograd(HARMONICS[0].name) && needs_autograd(HARMONICS[1].name)) {
        library = std::make_unique<torch::Library>(
            torch::Library::IMPL, "sphericart_torch", c10::DispatchKey::Autograd, __FILE__, __LINE__
        );
        library->impl("spherical_harmonics", &harmonics_autograd<0>);
        library->impl("solid_harmonics", &harmonics_autograd<1>);
    }
}

MissingAutogradCheck::MissingAutogradCheck(): previous_(c10::WarningUtils::get_warning_handler()) {
    c10::WarningUtils::set_warning_handler(this);
}

MissingAutogradCheck::~MissingAutogradCheck() {
    c10::WarningUtils::set_warning_handler(previous_);
}

void MissingAutogradCheck::process(const c10::Warning& warning) {
    if (warning.msg().find(MISSING) != std::string::npos) {
        missing_ = warning.msg();
    } else {
        previous_->process(warning);
    }
}

void MissingAutogradCheck::throw_if_missing() const {
    if (!missing_.empty()) {
        throw std::runtime_error(
            "the model's backward pass went through an operator without an autograd formula, so its "
            "forces would be silently wrong (" + missing_.substr(0, missing_.find(": ")) + "; its "
            "TorchScript extension registers the formula from Python only, which lmp does not run). "
            "Use a version of the extension that registers it in C++, or run the model from Python "
            "(mlipdrive ipi, the ASE calculator)"
        );
    }
}

}  // namespace mlipdrive

//! Mixed precision (`training.mixed_precision`, `--amp`): a closure run under
//! libtorch's autocast for the device it computes on. On CUDA that is tch's autocast
//! (float16 matmuls and convolutions). On the CPU it is libtorch's CPU autocast
//! (bfloat16), which tch does not wrap: its two switches are called here by their C++
//! symbols in libtorch_cpu.so. Autocast state is per thread, so phases trained side by
//! side each switch their own.

use tch::Device;

/// `c10::DeviceType::CPU`; the C++ type is `enum class DeviceType : int8_t`.
const DEVICE_TYPE_CPU: i8 = 0;

// Free C++ functions taking an int8_t-sized enum and a bool: the Itanium C++ ABI passes
// them as the C ABI would, so they are declared as C functions under their mangled
// names. Neither throws. The test below checks that a matmul comes out in bfloat16.
extern "C" {
    /// `bool at::autocast::is_autocast_enabled(c10::DeviceType)`
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device_type: i8) -> bool;
    /// `void at::autocast::set_autocast_enabled(c10::DeviceType, bool)`
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device_type: i8, enabled: bool);
}

/// Runs `f` under autocast on `device` when `enabled`, else as it is. Gradients and
/// weights stay in single precision: only the autocast ops (convolutions, linear
/// layers, matmuls) compute in the lower precision, on casts cached for this call.
pub fn autocast<T>(enabled: bool, device: Device, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    match device {
        Device::Cpu => {
            let _region = CpuAutocast::enter();
            f()
        }
        _ => tch::autocast(true, f),
    }
}

/// One CPU autocast region: entered on creation, left on drop (a panic inside leaves
/// it too), restoring the state found on entry.
struct CpuAutocast {
    was_enabled: bool,
}

impl CpuAutocast {
    fn enter() -> CpuAutocast {
        let was_enabled = cpu_autocast_enabled();
        // SAFETY: setters of thread-local state (see the extern block).
        unsafe {
            at_set_autocast_enabled(DEVICE_TYPE_CPU, true);
            torch_sys::at_autocast_increment_nesting();
        }
        CpuAutocast { was_enabled }
    }
}

impl Drop for CpuAutocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`. The weight casts cached inside the region are dropped
        // when the outermost region ends, so the next step casts the updated weights.
        unsafe {
            if torch_sys::at_autocast_decrement_nesting() == 0 {
                torch_sys::at_autocast_clear_cache();
            }
            at_set_autocast_enabled(DEVICE_TYPE_CPU, self.was_enabled);
        }
    }
}

/// Whether CPU autocast is on in this thread.
pub fn cpu_autocast_enabled() -> bool {
    // SAFETY: a getter of thread-local state.
    unsafe { at_is_autocast_enabled(DEVICE_TYPE_CPU) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn cpu_autocast_computes_matmuls_in_bfloat16_and_restores_the_state() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        assert!(!cpu_autocast_enabled());
        let (inside, nested) = autocast(true, Device::Cpu, || {
            let nested = autocast(true, Device::Cpu, || a.matmul(&b).kind());
            // Leaving the inner region keeps the outer one on.
            (a.matmul(&b), (nested, cpu_autocast_enabled()))
        });
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(nested, (Kind::BFloat16, true));
        assert!(!cpu_autocast_enabled(), "left on after the region");
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        // Disabled: no cast at all.
        assert_eq!(
            autocast(false, Device::Cpu, || a.matmul(&b)).kind(),
            Kind::Float
        );
        // bfloat16 keeps about 3 significant digits of the single-precision product.
        let exact = a.matmul(&b);
        let error = (inside.to_kind(Kind::Float) - &exact)
            .abs()
            .max()
            .double_value(&[]);
        let scale = exact.abs().max().double_value(&[]);
        assert!(error <= 0.02 * scale, "error {error} of {scale}");
    }

    #[test]
    fn a_panic_inside_the_region_leaves_it() {
        let caught = std::panic::catch_unwind(|| autocast(true, Device::Cpu, || panic!("inside")));
        assert!(caught.is_err());
        assert!(!cpu_autocast_enabled());
    }
}

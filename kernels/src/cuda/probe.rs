//! Whether the CUDA libraries can be loaded. cudarc loads them on first use and panics
//! when one is missing; these checks run first so that absence becomes a typed error.
//! The only `unsafe` of the CUDA path: each call just tries to open a shared library.

#![allow(unsafe_code)]

/// Whether the CUDA driver library (`libcuda`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only attempts to dlopen the driver library; no symbol is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC (`libnvrtc`) can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only attempts to dlopen the NVRTC library; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

//! The Debian packages the default guest image is made of, pinned by
//! version and SHA-256 (from `apt-cache show <package>=<version>`), so an
//! image is the same wherever it is built. This file is the one place the
//! pins are written: `.ci/image-lists.sh` and `tests/nested/fetch-kernel.sh`
//! read them from here, and tests ask `vmdbg image info` what was used.
//!
//! Debian's archive keeps only the current version of a package, so a pin
//! goes stale at the next point release; the image then uses the newest
//! package of the pin's family instead (see `debian::fetch`). Update the
//! pin when that happens (`apt-cache policy linux-image-amd64`, then
//! `apt-cache show linux-image-<abi>-amd64=<version>` for SHA256).

pub struct PinnedDeb {
    pub package: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
    /// What `apt-cache pkgnames` is asked for when the pin is gone...
    pub family_prefix: &'static str,
    /// ...and which of its answers can stand in for the pin.
    pub in_family: fn(&str) -> bool,
}

/// `linux-image-<version>-<abi>-amd64`: the plain amd64 flavour, not the
/// metapackage, -dbg, -unsigned, cloud or rt.
fn plain_amd64_kernel(name: &str) -> bool {
    let Some(middle) = name
        .strip_prefix("linux-image-")
        .and_then(|n| n.strip_suffix("-amd64"))
    else {
        return false;
    };
    let Some((version, abi)) = middle.rsplit_once('-') else {
        return false;
    };
    !abi.is_empty()
        && abi.chars().all(|c| c.is_ascii_digit())
        && version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// bookworm's kernel (6.1.176-1, the `linux-image-amd64` of bookworm/main
/// on 2026-11-25).
pub const KERNEL: PinnedDeb = PinnedDeb {
    package: "linux-image-6.1.0-50-amd64",
    version: "6.1.176-1",
    sha256: "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
    family_prefix: "linux-image-",
    in_family: plain_amd64_kernel,
};

pub const BUSYBOX: PinnedDeb = PinnedDeb {
    package: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
    sha256: "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
    family_prefix: "busybox-static",
    in_family: |name| name == "busybox-static",
};

/// Modules the guest loads, by name; their dependencies are added and the
/// load order computed from each module's `depends=` (the package ships
/// no modules.dep). virtio_mmio finds QEMU microvm's devices through ACPI;
/// virtio_console carries the agent under QEMU; vsock under the embedded
/// VMM; virtio_blk for disks.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "vmw_vsock_virtio_transport",
];

/// The kernel's debug information: the same build as [`KERNEL`], its full
/// DWARF `vmlinux` under `usr/lib/debug/boot/` (855 MB download).
pub const KERNEL_DBG: PinnedDeb = PinnedDeb {
    package: "linux-image-6.1.0-50-amd64-dbg",
    version: "6.1.176-1",
    sha256: "432bdac42155219d5ef471cf73b27bc86370c3a9ac441eed79ea1d4cb442c417",
    family_prefix: "linux-image-",
    in_family: |name| name.strip_suffix("-dbg").is_some_and(plain_amd64_kernel),
};

/// The kernel's sources at the same version: a `.tar.xz` of the tree.
pub const KERNEL_SOURCE: PinnedDeb = PinnedDeb {
    package: "linux-source-6.1",
    version: "6.1.176-1",
    sha256: "9305d1a151b8e83dcb88aa11361e7b9513f0c252bdf7f5647e4542762d99c094",
    family_prefix: "linux-source-",
    in_family: |name| {
        name.strip_prefix("linux-source-")
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    },
};

//! The Debian packages the default guest image is made of, pinned by
//! version and SHA-256 (from `apt-cache show <package>=<version>`), so an
//! image is the same wherever it is built. When Debian drops a pinned
//! version from its mirror, `apt-get download` fails and the error says to
//! update these lines (`apt-cache policy linux-image-amd64`, then
//! `apt-cache show linux-image-<abi>-amd64=<version>` for SHA256).

pub struct PinnedDeb {
    pub package: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
}

/// bookworm's kernel (6.1.176-1, the `linux-image-amd64` of bookworm/main
/// on 2026-11-25).
pub const KERNEL: PinnedDeb = PinnedDeb {
    package: "linux-image-6.1.0-50-amd64",
    version: "6.1.176-1",
    sha256: "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
};

pub const BUSYBOX: PinnedDeb = PinnedDeb {
    package: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
    sha256: "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
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
};

/// The kernel's sources at the same version: a `.tar.xz` of the tree.
pub const KERNEL_SOURCE: PinnedDeb = PinnedDeb {
    package: "linux-source-6.1",
    version: "6.1.176-1",
    sha256: "9305d1a151b8e83dcb88aa11361e7b9513f0c252bdf7f5647e4542762d99c094",
};

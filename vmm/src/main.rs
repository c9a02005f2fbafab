//! `vmdbg-vmm`: run a bare-metal kernel on KVM, optionally under gdb.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vmdbg_vmm::boot::EntryMode;
use vmdbg_vmm::control::{Control, Options};
use vmdbg_vmm::devices::serial::SerialTarget;
use vmdbg_vmm::error::exit_status;
use vmdbg_vmm::gdb::Listen;
use vmdbg_vmm::vcpu::VmEnd;
use vmdbg_vmm::vm::{parse_mem_size, Vm, VmConfig, VsockConfig};
use vmdbg_vmm::GdbOptions;

const AFTER_HELP: &str = "\
Exit status:
  (V << 1) | 1   the guest wrote V to I/O port 0xf4 (QEMU's isa-debug-exit)
  0              the guest powered off (ACPI S5), or a debugger killed it
  2              bad command line or kernel file
  4              the host cannot run the VM (no /dev/kvm, no permission, KVM error)
  6              the guest triple-faulted
  8              KVM internal error or failed VM entry
  10             a VM exit vmdbg-vmm does not handle
  12             the gdb server failed
  14             the guest rebooted (ACPI reset register, i8042 reset)
  16             a replay diverged from its recording, or a recording could not go on
  18             a thread made a system call its seccomp filter forbids (the message names it)

Examples:
  vmdbg-vmm --kernel hello.elf
  vmdbg-vmm --kernel vmlinuz --initrd initrd.img --mem 512M --cmdline 'console=ttyS0' \
      --disk disk.img --vsock-uds /tmp/vm.vsock
  vmdbg-vmm --kernel kernel.elf --gdb 127.0.0.1:1234 --wait-gdb
      then: gdb kernel.elf -ex 'target remote 127.0.0.1:1234'
  vmdbg-vmm --kernel kernel.elf --gdb unix:/tmp/gdb.sock --serial file:console.log
  vmdbg-vmm --kernel kernel.elf --api unix:/tmp/vm.api
      then: curl --unix-socket /tmp/vm.api -X PATCH http://localhost/vm -d '{\"state\": \"Paused\"}'
            curl --unix-socket /tmp/vm.api -X PUT http://localhost/snapshot/create \\
                -d '{\"snapshot_path\": \"vm.snap\", \"mem_file_path\": \"vm.mem\"}'
  vmdbg-vmm --restore vm.snap --mem-file vm.mem [--gdb ADDR] [--api unix:PATH]
  vmdbg-vmm --api unix:/tmp/vm.api      (waits for PUT /snapshot/load)
  vmdbg-vmm --kernel kernel.elf --record --gdb 127.0.0.1:1234 --wait-gdb
      then in gdb: continue, reverse-stepi, reverse-continue, watch + reverse-continue
  vmdbg-vmm --kernel kernel.elf --record-to run.rec     (record to the end, save)
  vmdbg-vmm --kernel kernel.elf --recordable --api unix:/tmp/vm.api --gdb 127.0.0.1:1234
      then: curl --unix-socket /tmp/vm.api -X PUT http://localhost/vmdbg/recording -d '{\"action\": \"start\"}'
            curl --unix-socket /tmp/vm.api http://localhost/vmdbg/recording
            curl --unix-socket /tmp/vm.api -X PUT http://localhost/vmdbg/recording \\
                -d '{\"action\": \"save\", \"path\": \"run.rec\"}'
            curl --unix-socket /tmp/vm.api -X PUT http://localhost/vmdbg/recording -d '{\"action\": \"stop\"}'
  vmdbg-vmm --replay run.rec --gdb 127.0.0.1:1234 --wait-gdb";

/// Run a 64-bit bare-metal kernel or a Linux kernel on KVM, with its serial
/// port on stdout, virtio-mmio disks and vsock, and an optional gdb server.
#[derive(Parser, Debug)]
#[command(name = "vmdbg-vmm", version, after_help = AFTER_HELP)]
struct Cli {
    /// The kernel: a 64-bit x86 ELF (PVH note or 64-bit entry point; Linux's
    /// uncompressed vmlinux is one) or a Linux bzImage (vmlinuz).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["dump_acpi", "restore", "api", "replay"],
        conflicts_with_all = ["restore", "replay"]
    )]
    kernel: Option<PathBuf>,

    /// Record the run from boot (one vCPU; every instruction is stepped and
    /// non-deterministic input logged), so gdb can step and continue
    /// backwards (reverse-stepi, reverse-continue).
    #[arg(long, requires = "kernel")]
    record: bool,

    /// Build the machine for recording (one vCPU, the userspace PIT) but
    /// run it live, at full speed, until a recording is started through
    /// the control API: `PUT /vmdbg/recording {"action": "start"}`.
    #[arg(long, requires = "kernel", conflicts_with_all = ["record", "record_to"])]
    recordable: bool,

    /// Record (as --record) and save the recording to FILE when the VM
    /// ends; `--replay FILE` debugs it later.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    record_to: Option<PathBuf>,

    /// Debug a saved recording: the machine starts where the recording
    /// did, and replays it (forward and backward) up to its end.
    #[arg(long, value_name = "FILE", conflicts_with = "restore")]
    replay: Option<PathBuf>,

    /// Instructions between a recording's in-memory checkpoints (a reverse
    /// step replays at most this many).
    #[arg(long, value_name = "N", default_value_t = vmdbg_vmm::record::DEFAULT_INTERVAL)]
    checkpoint_interval: u64,

    /// Start from a snapshot's state file (with --mem-file) instead of a
    /// kernel; the VM runs on from where the snapshot was taken.
    #[arg(long, value_name = "SNAPSHOT", requires = "mem_file")]
    restore: Option<PathBuf>,

    /// The snapshot's memory file (mapped, not read).
    #[arg(long, value_name = "MEM", requires = "restore")]
    mem_file: Option<PathBuf>,

    /// Serve the control API (HTTP/1.1 JSON in Firecracker's shape) on a
    /// unix socket: unix:PATH. Without --kernel or --restore the VMM waits
    /// for `PUT /snapshot/load`.
    #[arg(long, value_name = "unix:PATH", value_parser = parse_api)]
    api: Option<PathBuf>,

    /// Linux initramfs (a cpio archive, possibly compressed).
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,

    /// A raw disk image as a virtio-blk device; `,ro` makes it read-only.
    /// Repeat for more disks (the guest sees vda, vdb, ... in this order).
    #[arg(long, value_name = "PATH[,ro]")]
    disk: Vec<vmdbg_vmm::devices::virtio::block::DiskSpec>,

    /// A virtio-vsock device bridged to host unix sockets: host clients
    /// connect to PATH and send `CONNECT <port>\n`; guest connections to
    /// the host (CID 2) port P go to PATH_P. With --restore: where the
    /// snapshot's vsock device listens now.
    #[arg(long, value_name = "PATH")]
    vsock_uds: Option<PathBuf>,

    /// The guest's vsock CID.
    #[arg(long, default_value_t = 3, value_name = "CID", requires = "vsock_uds")]
    vsock_cid: u64,

    /// Write the ACPI tables the VM would get to DIR (one .dat per table,
    /// for `iasl -d`) and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    dump_acpi: Option<PathBuf>,

    /// Guest memory, e.g. 128M or 1G.
    #[arg(long, default_value = "128M", value_name = "SIZE")]
    mem: String,

    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    cpus: usize,

    /// Kernel command line (e.g. `console=ttyS0` for Linux).
    #[arg(long, default_value = "", value_name = "TEXT")]
    cmdline: String,

    /// How to enter the kernel.
    #[arg(long, value_enum, default_value_t = EntryMode::Auto)]
    entry: EntryMode,

    /// Where the serial port (COM1) writes: stdout, stdio (stdin is the
    /// guest's input), none, file:PATH or unix:PATH (vmdbg-vmm listens and
    /// waits for one client, whose writes are the guest's input).
    #[arg(long, default_value = "stdout", value_name = "TARGET")]
    serial: SerialTarget,

    /// Serve the gdb remote protocol on HOST:PORT, :PORT or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    gdb: Option<Listen>,

    /// With --gdb: start the vCPUs only once a debugger attaches (QEMU's -S).
    #[arg(long, requires = "gdb")]
    wait_gdb: bool,

    /// Run without seccomp filters (for debugging vmdbg-vmm itself, e.g.
    /// under strace or gdb with a new code path). By default every thread
    /// gets a filter allowing only the system calls it needs, and a
    /// forbidden call ends the process with a message naming it.
    #[arg(long)]
    no_seccomp: bool,

    /// Log more (repeat for more detail); or set RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_api(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(p.into()),
        _ => Err(format!("`{s}`: the control API listens on unix:PATH")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vmdbg_vmm::init_logging(cli.verbose);
    if cli.no_seccomp {
        eprintln!(
            "vmdbg-vmm: WARNING: --no-seccomp: running WITHOUT seccomp filters; \
             a guest that exploits a bug in this VMM can make any system call as this user"
        );
    } else if let Err(e) = vmdbg_vmm::seccomp::enable() {
        eprintln!("vmdbg-vmm: seccomp: cannot install the SIGSYS handler: {e}");
        return ExitCode::from(vmdbg_vmm::seccomp::EXIT_STATUS as u8);
    }

    let mem_bytes = match parse_mem_size(&cli.mem) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let vsock = cli.vsock_uds.clone().map(|uds_path| VsockConfig {
        guest_cid: cli.vsock_cid,
        uds_path,
    });
    if let Some(dir) = cli.dump_acpi {
        let slots: Vec<_> = (0..cli.disk.len() + vsock.is_some() as usize)
            .map(vmdbg_vmm::devices::virtio::slot)
            .collect();
        return match vmdbg_vmm::boot::acpi::dump(&dir, cli.cpus, &slots) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let gdb = cli.gdb.map(|listen| GdbOptions {
        listen,
        wait: cli.wait_gdb,
    });
    let options = Options {
        gdb,
        api: cli.api,
        serial: cli.serial.clone(),
        start_paused: false,
        record_to: cli.record_to.clone(),
        checkpoint_interval: cli.checkpoint_interval,
    };
    let recording = cli.record || cli.record_to.is_some();
    let interval = cli.checkpoint_interval;
    let started = match (cli.kernel, cli.restore, cli.mem_file) {
        (Some(kernel), _, _) => {
            let config = VmConfig {
                kernel,
                initrd: cli.initrd,
                cmdline: cli.cmdline,
                mem_bytes,
                cpus: cli.cpus,
                entry: cli.entry,
                serial: cli.serial,
                disks: cli.disk,
                vsock,
                recordable: recording || cli.recordable,
            };
            vmdbg_vmm::boot::validate(&config.kernel, config.initrd.as_deref(), config.mem_bytes)
                .and_then(|()| Vm::create(&config))
                .and_then(|mut vm| {
                    if recording {
                        vmdbg_vmm::record::start(&mut vm, interval, false)?;
                    }
                    Ok((Some(vm), None))
                })
        }
        (None, None, None) if cli.replay.is_some() => {
            let path = cli.replay.as_deref().expect("checked");
            vmdbg_vmm::record::open_file(path, &cli.serial).map(|vm| (Some(vm), None))
        }
        (None, Some(state), Some(mem)) => {
            vmdbg_vmm::snapshot::restore_new(&state, &mem, &cli.serial, cli.vsock_uds.as_deref())
                .map(|(vm, snap)| (Some(vm), Some(snap)))
        }
        _ => Ok((None, None)),
    };
    let result = started
        .and_then(|(vm, snap)| Control::new(vm, snap, options))
        .and_then(|control| {
            // Set-up is done: the VM, its threads and every listener exist.
            vmdbg_vmm::seccomp::install(vmdbg_vmm::seccomp::Kind::Main);
            control.run()
        });
    match result {
        Ok(VmEnd::Guest { status }) => ExitCode::from(status as u8),
        Ok(VmEnd::Fatal { status, report }) => {
            eprint!("{report}");
            ExitCode::from(status as u8)
        }
        Err(e) => fail(e),
    }
}

fn fail(e: vmdbg_vmm::error::Error) -> ExitCode {
    eprintln!("vmdbg-vmm: {e}");
    let status = e.exit_status();
    debug_assert!(
        status % 2 == 0 && status != 0,
        "VMM statuses are even: {}",
        exit_status::BAD_INPUT
    );
    ExitCode::from(status as u8)
}

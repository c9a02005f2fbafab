//! Program mode: debug a C or Rust program inside a fresh Linux VM.
//!
//! A `launch` with `program` boots a VM through the engine interface (it
//! never branches on which engine), copies the program and its
//! shared-library closure in (the same plan as `vmdbg run --copy`), opens
//! the agent's `gdbserver` channel with two `program-output` channels for
//! the program's stdout and stderr (guest-agent/PROTOCOL.md), and connects
//! the session's RSP client to it. The program's DWARF is loaded at its
//! load bias (ASLR is off in the debugger, so a PIE has a fixed one, read
//! from the auxiliary vector's AT_ENTRY against the ELF's e_entry). It
//! runs to its entry point, where the dynamic loader has mapped its
//! libraries; each library with DWARF is loaded from its host copy at the
//! `l_addr` of the svr4 library list (`--copy` puts libraries at the same
//! path in the guest as on the host).
//!
//! This module owns the VM of a program session and the relays of the
//! program's output; the session owns everything else (stops, stepping,
//! inspection work the same as for a kernel).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use super::launch::LineSink;
use super::outbox::Outbox;
use crate::engine::{self, EngineChoice, Vm, VmSpec};
use crate::image::GuestImage;
use crate::rsp::RspClient;
use crate::symbols::Symbols;
use crate::test_runner::setup_state;

/// A program launch (see schema/launch.schema.json).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgramConfig {
    /// The program on this host; it is copied into the guest.
    pub program: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// One test of the test binary `program` to debug alone, with the
    /// arguments `vmdbg test` runs it with.
    #[serde(default)]
    pub test: Option<String>,
    /// Shell commands run in the guest before the program starts.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Added to (and overriding) the guest's default environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory in the guest (default /root).
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub stop_on_entry: bool,
    /// auto, kvm or qemu; default $VMDBG_ENGINE, else auto.
    #[serde(default)]
    pub engine: Option<EngineChoice>,
    /// A custom guest image; default: vmdbg's default image.
    #[serde(default)]
    pub image: Option<ImageConfig>,
    /// DWARF path prefix → where those sources are on this host.
    #[serde(default)]
    pub source_map: BTreeMap<String, String>,
}

/// A kernel and an initramfs whose init starts `vmdbg-agent serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Where the program goes in the guest.
const GUEST_DIR: &str = "/root";

/// The VM of a program session and the relays of the program's output.
pub struct GuestProgram {
    vm: Option<Box<dyn Vm>>,
    /// Signalled when a relay has passed on all of its stream.
    relays_done: Vec<std::sync::mpsc::Receiver<()>>,
    pub guest_path: String,
}

impl GuestProgram {
    /// Waits (bounded) until the program's output has all been passed on,
    /// so `output` events come before `exited`.
    pub async fn drain_output(&mut self, limit: Duration) {
        let relays = std::mem::take(&mut self.relays_done);
        let _ = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + limit;
            for done in relays {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = done.recv_timeout(left);
            }
        })
        .await;
    }

    pub fn vm_mut(&mut self) -> Option<&mut Box<dyn Vm>> {
        self.vm.as_mut()
    }

    /// Ends the VM (the guest is disposable: no polite poweroff needed).
    pub async fn shut_down(&mut self) {
        if let Some(mut vm) = self.vm.take() {
            let _ = tokio::task::spawn_blocking(move || vm.shutdown(Duration::from_secs(2))).await;
        }
    }
}

impl Drop for GuestProgram {
    fn drop(&mut self) {
        // A session that ends without shut_down (an error mid-launch) still
        // must not leave its VM behind; dropping the Vm ends it.
        self.vm.take();
    }
}

/// A started program session, ready for the session to adopt.
pub struct StartedProgram {
    pub rsp: RspClient,
    /// The program's own DWARF.
    pub symbols: Rc<Symbols>,
    /// The program's, then each shared library's that has DWARF, at their
    /// load biases.
    pub modules: Vec<Rc<Symbols>>,
    pub program: GuestProgram,
}

/// `progress*` events for one long operation.
pub(super) struct Progress<'a> {
    out: &'a mut Outbox,
    id: String,
}

impl<'a> Progress<'a> {
    pub(super) fn start(out: &'a mut Outbox, title: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let id = format!(
            "vmdbg-program-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        out.event(
            "progressStart",
            json!({ "progressId": id, "title": title, "cancellable": false }),
        );
        Progress { out, id }
    }
    pub(super) fn update(&mut self, message: &str, percentage: u32) {
        self.out.event(
            "progressUpdate",
            json!({ "progressId": self.id, "message": message, "percentage": percentage }),
        );
    }
    pub(super) fn end(self, message: &str) {
        self.out.event(
            "progressEnd",
            json!({ "progressId": self.id, "message": message }),
        );
    }
}

/// Boots the VM, copies the program in, launches it under the agent's
/// debugger and connects to it. The program is stopped at its entry point
/// (its shared libraries mapped, their DWARF loaded) when this returns.
pub async fn start(
    config: &ProgramConfig,
    out: &mut Outbox,
    console: LineSink,
) -> Result<StartedProgram> {
    let host_program = config.program.clone();
    if !host_program.is_file() {
        bail!(
            "program {} is not a file on this host",
            host_program.display()
        );
    }
    let elf = ElfFacts::read(&host_program)?;
    let name = host_program
        .file_name()
        .context("the program path names no file")?
        .to_string_lossy()
        .into_owned();
    // A test goes where `vmdbg test` puts it, so both share a set-up state.
    let dir = if config.test.is_some() {
        crate::test_runner::GUEST_DIR
    } else {
        GUEST_DIR
    };
    let guest_path = format!("{dir}/{name}");
    let choice = crate::guest::engine_choice(config.engine)?;
    let mut progress = Progress::start(out, "Starting the program in a fresh VM");
    let result = boot_and_launch(
        config,
        choice,
        &host_program,
        &guest_path,
        &elf,
        &mut progress,
        console,
    )
    .await;
    match &result {
        Ok(_) => progress.end("the program is loaded"),
        Err(e) => progress.end(&format!("failed: {e:#}")),
    }
    result
}

async fn boot_and_launch(
    config: &ProgramConfig,
    choice: EngineChoice,
    host_program: &Path,
    guest_path: &str,
    elf: &ElfFacts,
    progress: &mut Progress<'_>,
    console: LineSink,
) -> Result<StartedProgram> {
    progress.update("preparing the guest image", 5);
    let image_config = config.image.clone();
    let copy_spec = format!("{}:{guest_path}", host_program.display());
    let (image, copies) = blocking(move || {
        let image = match &image_config {
            Some(i) => GuestImage::custom(&i.kernel, &i.initrd)?,
            None => crate::image::default_image()?,
        };
        let copies = crate::guest::copy::plan(&[copy_spec])?;
        Ok((image, copies))
    })
    .await?;

    progress.update("booting the VM", 20);
    let spec = VmSpec {
        image,
        mem_mib: 512,
        cpus: 1,
        start_paused: false,
        extra_cmdline: String::new(),
        record: None,
        resets: false,
    };
    // A test starts from `vmdbg test`'s cached set-up state when there is
    // one (binary copied in, setup run), and leaves one when there is not.
    let for_test = config.test.is_some();
    let (setup, state_copies) = (config.setup.clone(), copies.clone());
    let (vm, why, state, set_up) = blocking(move || {
        let (engine, why) = engine::choose_engine(choice)?;
        let state = for_test
            .then(|| setup_state::path(engine.as_ref(), &spec, &state_copies, &setup))
            .flatten();
        if let Some(path) = state.as_ref().filter(|p| p.exists()) {
            match setup_state::start(engine.as_ref(), &spec, path) {
                Ok(vm) => return Ok((vm, why, state, true)),
                Err(e) => tracing::info!("the cached set-up state did not start: {e:#}"),
            }
        }
        // Nothing interrupts a session's boot but its end (the VM is
        // dropped with the session).
        let never = std::sync::atomic::AtomicUsize::new(0);
        let vm = crate::guest::boot(engine.as_ref(), &spec, &never)?
            .context("the VM's boot was interrupted")?;
        vm.agent().hello().context("agent hello")?;
        Ok((vm, why, state, false))
    })
    .await?;
    let _ = console.send(("console", format!("vmdbg: {why}\n")));
    if set_up {
        let _ = console.send((
            "console",
            "vmdbg: started from the cached set-up state of vmdbg test\n".to_string(),
        ));
    }
    let mut program = GuestProgram {
        vm: Some(vm),
        relays_done: Vec::new(),
        guest_path: guest_path.to_string(),
    };
    let agent = program.vm.as_ref().expect("just booted").agent().clone();

    if !set_up {
        progress.update(
            &format!("copying {} files into the guest", copies.files.len()),
            70,
        );
        let (copy_agent, to_copy) = (agent.clone(), copies.clone());
        blocking(move || crate::guest::copy_in(&copy_agent, &to_copy)).await?;
    }
    let mut env: BTreeMap<String, String> = crate::guest::guest_env(&copies).into_iter().collect();
    env.extend(config.env.clone());
    let env: Vec<(String, String)> = env.into_iter().collect();
    if !set_up {
        progress.update("running the setup commands", 80);
        let (setup_agent, setup, setup_env) = (agent.clone(), config.setup.clone(), env.clone());
        blocking(move || {
            crate::guest::run_setup(&setup_agent, &setup, &setup_env, crate::guest::BOOT_LIMIT)
                .context("launch configuration `setup`")
        })
        .await?;
        // (Only then is the VM taken out: a tuple would take it always.)
        if let Some((path, mut vm)) = state.and_then(|p| Some((p, program.vm.take()?))) {
            let (vm, saved) = blocking(move || {
                let saved = setup_state::save(vm.as_mut(), &path);
                Ok((vm, saved))
            })
            .await?;
            program.vm = Some(vm);
            if let Err(e) = saved {
                tracing::info!("could not save the set-up state: {e:#}");
            }
        }
    }

    progress.update("launching the program under the debugger", 90);
    let cwd = config.cwd.clone().unwrap_or_else(|| GUEST_DIR.into());
    let mut argv = vec![guest_path.to_string()];
    if let Some(test) = &config.test {
        let framework = crate::test_runner::Framework::of(host_program)?;
        argv.extend(framework.run_args(test));
    }
    argv.extend(config.args.iter().cloned());
    let channel_agent = agent.clone();
    let (stdout, stderr, rsp_stream) = blocking(move || {
        let channels = crate::guest::debuggee::start(
            &channel_agent,
            &crate::guest::debuggee::Debuggee {
                argv: &argv,
                env: &env,
                cwd: &cwd,
                want_status: false,
            },
        )?;
        Ok((channels.stdout, channels.stderr, channels.rsp))
    })
    .await
    .context(
        "the guest's agent cannot debug programs (is the image's agent older than this vmdbg?)",
    )?;
    // The first lines of stderr explain a launch that failed.
    let stderr_head = Arc::new(Mutex::new(String::new()));
    program
        .relays_done
        .push(relay_output(stdout, "stdout", console.clone(), None));
    program.relays_done.push(relay_output(
        stderr,
        "stderr",
        console,
        Some(stderr_head.clone()),
    ));

    rsp_stream.set_nonblocking(true)?;
    let rsp_stream = tokio::net::UnixStream::from_std(rsp_stream)?;
    let (reader, writer) = rsp_stream.into_split();
    let mut rsp = match RspClient::over(Box::new(reader), Box::new(writer)).await {
        Ok(rsp) => rsp,
        Err(e) => {
            program.drain_output(Duration::from_secs(2)).await;
            let said = stderr_head
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .trim()
                .to_string();
            if said.is_empty() {
                return Err(e.context(format!("the guest's debugger did not start {guest_path}")));
            }
            bail!("the guest could not start {guest_path}: {said}");
        }
    };
    let at_entry = entry_point(&mut rsp).await?;
    let bias = if elf.position_independent {
        at_entry.wrapping_sub(elf.entry)
    } else {
        0
    };
    tracing::info!("{} loaded at bias {bias:#x}", host_program.display());
    let source_map: Vec<(String, String)> = config.source_map.clone().into_iter().collect();
    let load = |path: &Path, bias: u64| -> Result<Symbols> {
        let mut symbols = Symbols::load_at(path, bias)?;
        symbols.set_source_map(&source_map);
        Ok(symbols)
    };
    let symbols = Rc::new(load(host_program, bias)?);
    run_to_entry(&mut rsp, at_entry, guest_path, &mut program).await?;
    let mut modules = vec![symbols.clone()];
    let guest_to_host: BTreeMap<&str, &Path> = copies
        .files
        .iter()
        .map(|(h, g)| (g.as_str(), h.as_path()))
        .collect();
    for (guest_lib, lib_bias) in shared_libraries(&mut rsp).await? {
        let Some(host_lib) = guest_to_host.get(guest_lib.as_str()) else {
            continue;
        };
        // Libraries without DWARF (a distribution's libc) get no source
        // lines; their frames show as addresses.
        match load(host_lib, lib_bias) {
            Ok(lib) => modules.push(Rc::new(lib)),
            Err(e) => tracing::info!("no source-level debugging in {guest_lib}: {e:#}"),
        }
    }
    Ok(StartedProgram {
        rsp,
        symbols,
        modules,
        program,
    })
}

/// Runs the program from its dynamic loader's first instruction to its own
/// entry point, where the loader has mapped every library it needs: their
/// DWARF can be loaded and breakpoints set in them before `main`.
async fn run_to_entry(
    rsp: &mut RspClient,
    at_entry: u64,
    guest_path: &str,
    program: &mut GuestProgram,
) -> Result<()> {
    rsp.insert_breakpoint(at_entry)
        .await
        .context("cannot set a breakpoint at the program's entry point")?;
    rsp.resume_continue()?;
    let stop = rsp.wait_stop(|_| {}).await?;
    match stop {
        crate::rsp::StopReply::Signal { signal: 5, .. } => {}
        crate::rsp::StopReply::Exited { status } => {
            program.drain_output(Duration::from_secs(2)).await;
            bail!("{guest_path} exited with status {status} before reaching its entry point (a missing shared library? its stderr is in the debug console)");
        }
        other => bail!("{guest_path} stopped before reaching its entry point: {other:?}"),
    }
    rsp.remove_breakpoint(at_entry).await?;
    Ok(())
}

/// The shared libraries of the stopped program (`qXfer:libraries-svr4`):
/// each one's path in the guest and its load bias (`l_addr`).
async fn shared_libraries(rsp: &mut RspClient) -> Result<Vec<(String, u64)>> {
    let xml = read_xfer(rsp, "libraries-svr4", "")
        .await
        .context("cannot read the program's shared-library list")?;
    tracing::debug!("libraries-svr4: {}", String::from_utf8_lossy(&xml));
    Ok(parse_svr4_libraries(&String::from_utf8_lossy(&xml)))
}

/// `<library name="…" lm="…" l_addr="0x…" …/>` entries, in order.
fn parse_svr4_libraries(xml: &str) -> Vec<(String, u64)> {
    let attribute = |element: &str, name: &str| -> Option<String> {
        // The split ate the space before the first attribute.
        let element = format!(" {element}");
        let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = element[start..].find('"')? + start;
        Some(element[start..end].to_string())
    };
    let unescape = |text: String| {
        text.replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    xml.split("<library ")
        .skip(1)
        .filter_map(|element| {
            let name = unescape(attribute(element, "name")?);
            let l_addr = attribute(element, "l_addr")?;
            let bias = u64::from_str_radix(l_addr.trim_start_matches("0x"), 16).ok()?;
            (!name.is_empty()).then_some((name, bias))
        })
        .collect()
}

/// Runs blocking engine or agent work off the session's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a vmdbg worker thread failed")?
}

/// Passes a program output stream on as `output` events of `category`;
/// the receiver fires when the stream has ended.
fn relay_output(
    mut stream: UnixStream,
    category: &'static str,
    sink: LineSink,
    head: Option<Arc<Mutex<String>>>,
) -> std::sync::mpsc::Receiver<()> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        // A UTF-8 character split between two reads is kept for the next.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let valid = match std::str::from_utf8(&pending) {
                Ok(_) => pending.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => pending.len(),
            };
            if valid == 0 {
                continue;
            }
            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
            pending.drain(..valid);
            if let Some(head) = &head {
                let mut head = head.lock().unwrap_or_else(|p| p.into_inner());
                if head.len() < 4096 {
                    head.push_str(&text);
                }
            }
            if sink.send((category, text)).is_err() {
                break;
            }
        }
        if !pending.is_empty() {
            let _ = sink.send((category, String::from_utf8_lossy(&pending).into_owned()));
        }
        let _ = done_tx.send(());
    });
    done_rx
}

/// What the load bias computation needs from the program's ELF header.
#[derive(Debug)]
struct ElfFacts {
    /// ET_DYN: a position-independent executable, loaded at a bias.
    position_independent: bool,
    entry: u64,
}

impl ElfFacts {
    fn read(path: &Path) -> Result<Self> {
        let mut header = [0u8; 64];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut header))
            .with_context(|| format!("cannot read the ELF header of {}", path.display()))?;
        if &header[..4] != b"\x7fELF" {
            bail!("{} is not an ELF program", path.display());
        }
        if header[4] != 2 || header[5] != 1 {
            bail!(
                "{} is not a 64-bit little-endian ELF program (the guest is x86-64 Linux)",
                path.display()
            );
        }
        let e_type = u16::from_le_bytes([header[16], header[17]]);
        let e_machine = u16::from_le_bytes([header[18], header[19]]);
        if e_machine != 62 {
            bail!(
                "{} is built for machine {e_machine}, not x86-64",
                path.display()
            );
        }
        if e_type != 2 && e_type != 3 {
            bail!(
                "{} is not an executable (ELF type {e_type})",
                path.display()
            );
        }
        let entry = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
        Ok(ElfFacts {
            position_independent: e_type == 3,
            entry,
        })
    }
}

const AT_ENTRY: u64 = 9;

/// Where the kernel put the program's entry point (auxv AT_ENTRY): for a
/// PIE, minus e_entry, its load bias.
async fn entry_point(rsp: &mut RspClient) -> Result<u64> {
    let auxv = read_xfer(rsp, "auxv", "")
        .await
        .context("cannot read the program's auxiliary vector")?;
    let at_entry = auxv
        .chunks_exact(16)
        .map(|pair| {
            (
                u64::from_le_bytes(pair[..8].try_into().expect("8")),
                u64::from_le_bytes(pair[8..].try_into().expect("8")),
            )
        })
        .find(|&(key, _)| key == AT_ENTRY)
        .map(|(_, value)| value)
        .context("the program's auxiliary vector has no AT_ENTRY")?;
    Ok(at_entry)
}

/// Reads a whole `qXfer:OBJECT:read:ANNEX` object.
async fn read_xfer(rsp: &mut RspClient, object: &str, annex: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let chunk = rsp.packet_size.saturating_sub(16).max(128);
        let reply = rsp
            .request(&format!(
                "qXfer:{object}:read:{annex}:{:x},{chunk:x}",
                data.len()
            ))
            .await?;
        match reply.first() {
            Some(b'm') => data.extend_from_slice(&reply[1..]),
            Some(b'l') => {
                data.extend_from_slice(&reply[1..]);
                return Ok(data);
            }
            _ => bail!(
                "the debugger refused qXfer:{object}: {}",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svr4_library_lists_parse_into_paths_and_biases() {
        let xml = r#"<library-list-svr4 version="1.0" main-lm="0x7ffff7ffe2e0"><library name="/tmp/a&amp;b/libshape.so" lm="0x7ffff7fc1000" l_addr="0x7ffff7fb9000" l_ld="0x7ffff7fbce00" lmid="0x0"/><library name="" lm="0x1" l_addr="0x0" l_ld="0x0" lmid="0x0"/><library name="/lib/x86_64-linux-gnu/libc.so.6" lm="0x7ffff7fb2000" l_addr="0x7ffff7dc5000" l_ld="0x7ffff7f9e8c0" lmid="0x0"/></library-list-svr4>"#;
        assert_eq!(
            parse_svr4_libraries(xml),
            vec![
                ("/tmp/a&b/libshape.so".to_string(), 0x7ffff7fb9000),
                (
                    "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                    0x7ffff7dc5000
                )
            ]
        );
        assert!(parse_svr4_libraries("<library-list-svr4 version=\"1.0\"/>").is_empty());
    }

    #[test]
    fn elf_headers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("script.sh");
        std::fs::write(&text, "#!/bin/sh\necho not an ELF, long enough to fill a 64-byte header: ........................\n").unwrap();
        assert!(ElfFacts::read(&text)
            .unwrap_err()
            .to_string()
            .contains("not an ELF"));
        let short = dir.path().join("short");
        std::fs::write(&short, "\x7fELF").unwrap();
        assert!(ElfFacts::read(&short).is_err());
        let sh = ElfFacts::read(Path::new("/bin/sh")).unwrap();
        assert!(sh.entry != 0);
    }
}

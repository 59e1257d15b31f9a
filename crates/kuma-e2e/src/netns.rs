//! A test in a network namespace of its own, for what needs the kernel's
//! help: a transparent proxy's traffic redirection (iptables rules) and
//! addresses beyond 127.0.0.1 on loopback.
//!
//! The test's thread joins a fresh namespace and builds its tokio runtime
//! there; every thread the runtime starts and every process the test spawns
//! (kuma-cp, kuma-dp, Envoy, iptables) inherit it. Nothing of the machine's
//! own network changes, and the namespace disappears with the test's last
//! thread and process, whatever way the test ends.
//!
//! It needs root (CAP_SYS_ADMIN to enter a namespace, CAP_NET_ADMIN for
//! its addresses and rules), `unshare` and `ip` (util-linux, iproute2) and
//! `iptables`, all of which the project's test script makes sure of.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// The mark of client sockets whose connections [`redirect_marked_clients`]
/// sends to the transparent proxy; nothing else in the namespace carries it,
/// so the proxy's own connections leave as they are.
pub const CLIENT_MARK: u32 = 0x4b;

/// The iptables rules of a transparent proxy, narrowed to marked clients:
/// every TCP connection they open, over IPv4 or IPv6, goes to the proxy's
/// outbound redirect `port`, which finds where it was going with
/// `SO_ORIGINAL_DST`.
pub fn redirect_marked_clients(port: u16) -> [Vec<String>; 2] {
    ["iptables", "ip6tables"].map(|program| {
        words(&format!(
            "{program} -t nat -A OUTPUT -p tcp -m mark --mark {CLIENT_MARK:#x} -j REDIRECT --to-ports {port}"
        ))
    })
}

/// `ip addr add {cidr} dev lo`: more local addresses, say the hosts
/// "outside the mesh" that a test's servers listen on. An IPv6 address is
/// usable at once (`nodad`).
pub fn address_on_loopback(cidr: &str) -> Vec<String> {
    let nodad = if cidr.contains(':') { " nodad" } else { "" };
    words(&format!("ip addr add {cidr} dev lo{nodad}"))
}

fn words(command: &str) -> Vec<String> {
    command.split(' ').map(String::from).collect()
}

/// A TCP connection to `address` from a marked socket: what an application
/// behind a transparent proxy opens.
pub async fn connect_marked(address: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_mark(CLIENT_MARK)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpSocket::from_std_stream(socket.into())
        .connect(address)
        .await
}

/// Runs the future `test` makes on a multi-threaded runtime inside a new
/// network namespace, after bringing its loopback up and running `setup`
/// (argument lists, say [`address_on_loopback`] or
/// [`redirect_marked_clients`]) there. A panic in the test or a failed setup
/// command fails the caller.
pub fn run<F, Fut>(setup: &[Vec<String>], test: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = ()>,
{
    let holder = Holder::start();
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            holder.enter();
            run_command(&words("ip link set lo up"));
            for args in setup {
                run_command(args);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
            runtime.block_on(test());
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

fn run_command(args: &[String]) {
    let (program, rest) = args.split_first().expect("a setup command");
    let output = Command::new(program)
        .args(rest)
        .output()
        .unwrap_or_else(|e| panic!("could not run {program} (is it installed?): {e}"));
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A process that made the namespace and holds it until the test's thread
/// is in; the thread keeps it from then on.
struct Holder {
    child: Child,
    link: PathBuf,
}

impl Holder {
    fn start() -> Holder {
        let own = std::fs::read_link("/proc/thread-self/ns/net").expect("own network namespace");
        let child = Command::new("unshare")
            .args(["--net", "--", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run unshare: {e}"));
        let link = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let mut holder = Holder { child, link };
        // The child is in the new namespace once its link names another one
        // than ours (before that it still runs `unshare` in ours).
        for _ in 0..500 {
            if let Some(status) = holder.child.try_wait().ok().flatten() {
                panic!("unshare --net exited ({status}): a new network namespace needs root");
            }
            if std::fs::read_link(&holder.link).is_ok_and(|l| l != own) {
                return holder;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("unshare --net made no network namespace within 5s");
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let ns = std::fs::File::open(&self.link)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.link.display()));
        move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .unwrap_or_else(|e| panic!("could not enter the network namespace: {e}"));
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! QEMU itself: the boards, starting QEMU on a firmware, and taking its UART connection.

use super::*;

/// Kills and reaps QEMU when dropped (QEMU never exits by itself when its peer goes).
pub(crate) struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QEMU machine the firmware runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Board {
    /// TI LM3S6965 evaluation board: Cortex-M3, PL011 UART0.
    Lm3s6965evb,
    /// BBC micro:bit: nRF51822, Cortex-M0, nRF51 UART.
    Microbit,
    /// QEMU's RISC-V `virt` machine (riscv32): NS16550 UART0.
    Virt,
}

impl Board {
    const ALL: [Board; 3] = [Board::Lm3s6965evb, Board::Microbit, Board::Virt];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Board::Lm3s6965evb => "lm3s6965evb",
            Board::Microbit => "microbit",
            Board::Virt => "virt",
        }
    }

    /// The Rust target the firmware for this board is built for.
    pub(crate) fn target(self) -> &'static str {
        match self {
            Board::Lm3s6965evb => "thumbv7m-none-eabi",
            Board::Microbit => "thumbv6m-none-eabi",
            Board::Virt => "riscv32imac-unknown-none-elf",
        }
    }

    /// The board named `name`, or the one whose target appears in `elf`'s path.
    pub(crate) fn find(name: Option<&str>, elf: &str) -> Option<Board> {
        match name {
            Some(name) => Board::ALL.into_iter().find(|b| b.name() == name),
            None => Board::ALL.into_iter().find(|b| elf.contains(b.target())),
        }
    }

    /// The QEMU program and its machine arguments.
    pub(crate) fn qemu(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Board::Lm3s6965evb => (
                "qemu-system-arm",
                &["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
            ),
            Board::Microbit => (
                "qemu-system-arm",
                &["-cpu", "cortex-m0", "-machine", "microbit"],
            ),
            Board::Virt => (
                "qemu-system-riscv32",
                &["-machine", "virt", "-bios", "none"],
            ),
        }
    }
}

pub(crate) fn spawn_qemu(board: Board, elf: &str, port: u16) -> Res<Qemu> {
    let (program, machine) = board.qemu();
    Command::new(program)
        .args(machine)
        .args(["-display", "none", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-kernel", elf])
        .args(["-serial", &format!("tcp:127.0.0.1:{port},nodelay=on")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Qemu)
        .map_err(|e| format!("cannot start {program}: {e}"))
}

/// QEMU's connection to `listener` (blocking, no delay), within `CONNECT_TIMEOUT`.
pub(crate) fn accept_qemu(listener: &TcpListener) -> Res<TcpStream> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(format!("QEMU did not connect: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

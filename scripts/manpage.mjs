// usbip-qrexec(8) from the same text as --help: runs the CLI given (the package's bundle, or
// dist/cli/main.js) for its usage and each command's --help, and sets them in roff, each help
// text verbatim (.nf) so the page says exactly what the command says.
//   node scripts/manpage.mjs [CLI.js] > usbip-qrexec.8
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Escape text for roff: backslashes, and a leading . or ' that would be read as a request. */
const esc = (line) => line.replace(/\\/g, "\\e").replace(/^([.'])/, "\\&$1");

export async function manPage(cli, version) {
  const run = (args) => execFileSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, USBIP_QREXEC_VERBOSE: "" } });
  const usage = run(["--help"]);
  const block = /^Commands:\n([\s\S]*?)\n\n/m.exec(usage)?.[1] ?? "";
  const names = [...block.matchAll(/^  (\S+)  +(.*)$/gm)].map((m) => ({ name: m[1], summary: m[2] }));
  if (names.length === 0) throw new Error("manpage: no commands in --help");
  const exit = /^Exit status:\n([\s\S]*?)\n*$/m.exec(usage)?.[1] ?? "";
  const date = new Date().toISOString().slice(0, 10);
  const out = [
    `.TH USBIP-QREXEC 8 "${date}" "usbip-qrexec ${version}" "System Administration"`,
    ".SH NAME",
    "usbip-qrexec \\- USB/IP passthrough between VMs over a qrexec stream",
    ".SH SYNOPSIS",
    ".B usbip-qrexec",
    ".I COMMAND",
    "[\\fIARGS\\fR...]",
    ".SH DESCRIPTION",
    "A userspace USB/IP engine for Qubes OS: the backend exports a USB device over a qrexec link",
    "(the kernel's usbip-host, a validating relay in front of it, or its own usbfs URBs), the frontend imports it",
    "(the kernel's vhci-hcd, or a validating relay that checks every URB before the kernel sees it).",
    "The qubes.USB, qubes.USBAttach and qubes.USBDetach services in /etc/qubes-rpc call it.",
    "Each command's text below is what \\fBusbip-qrexec\\fR \\fICOMMAND\\fR \\fB--help\\fR prints.",
    ".SH COMMANDS",
  ];
  for (const { name, summary } of names) {
    out.push(`.SS ${name}`, esc(summary), ".PP", ".nf");
    for (const line of run([name, "--help"]).replace(/\n+$/, "").split("\n")) out.push(esc(line));
    out.push(".fi");
  }
  out.push(".SH EXIT STATUS", ".nf", ...exit.split("\n").map(esc), ".fi");
  out.push(
    ".SH ENVIRONMENT",
    ".TP", ".B USBIP_QREXEC_VERBOSE=1", "log each step on stderr (as --verbose)",
    ".TP", ".B USBIP_QREXEC_DEBUG=1", "stack traces of internal errors",
    ".SH FILES",
    ".TP", ".B /etc/qubes-rpc/qubes.USB.config", "the modes the qubes.USB* services use",
    ".TP", ".B /var/run/qubes/usb-import-DOMAIN-BUSID.state", "the vhci-hcd port of an import started by qubes.USBAttach",
    ".TP", ".B /run/usbip-qrexec/", "pid files of running exports, statefiles of connect/attach",
    ".SH SEE ALSO",
    ".BR usbip (8),",
    ".BR usbipd (8),",
    ".BR qvm-usb (1)",
  );
  return out.join("\n") + "\n";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const cli = process.argv[2] ?? path.join(root, "dist/cli/main.js");
  const { version } = JSON.parse(execFileSync(process.execPath, ["-e", "process.stdout.write(require('fs').readFileSync(process.argv[1]))", path.join(root, "package.json")], { encoding: "utf8" }));
  process.stdout.write(await manPage(cli, version));
}

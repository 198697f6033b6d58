# SPDX-License-Identifier: MIT
"""The installed tree (meson install --destdir), with the checkout out of reach.

Usage: test_install.py CHECK BUILD_DIR PREFIX BINDIR LIBDIR MANDIR SYSCONFDIR SOURCE_ROOT

CHECK is one of:
  run    ssmd from the installed tree processes a WAV file with no --model: it
         must find the installed default model (XDG_DATA_DIRS pointed at the
         tree, SSMD_NO_SOURCE_MODELS=1 so the checkout's models/ is not
         searched) and write an output of the input's length
  embed  examples/embed.c compiled against the installed tree with
         pkg-config --cflags --libs ssmd, run with LD_LIBRARY_PATH there
  man    every option of `ssmd --help` is in the installed man page ssmd.1,
         and each client has its man page with every option of its --help;
         each page has NAME (PROGRAM \- the summary line of --help), SYNOPSIS,
         DESCRIPTION, OPTIONS, ENVIRONMENT (every variable the program's
         sources getenv(), and the clients' endpoint variables), EXIT STATUS
         (0, 1, 2) and, for ssmd, FILES (the installed ssmd.conf and models
         directory); groff and man -l render each without a warning
  units  the installed example ssmd.conf (every key uncommented) is a valid
         config; systemd-analyze verify accepts both units
Prints what it checked; exits 1 with a line on the first failure.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import wave


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def install(build_dir, dest):
    r = subprocess.run(["meson", "install", "-C", build_dir, "--no-rebuild", "--quiet", "--destdir", dest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("meson install: " + (r.stderr or r.stdout).strip()[-2000:])


def clean_env(root, tmp, datadir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSMD_", "XDG_"))}
    env.update({
        "HOME": os.path.join(tmp, "home"),
        "XDG_DATA_HOME": os.path.join(tmp, "home", "share"),
        "XDG_DATA_DIRS": datadir,
        "SSMD_NO_SOURCE_MODELS": "1",
    })
    os.makedirs(env["XDG_DATA_HOME"], exist_ok=True)
    return env


def write_wav(path, n, rate=48000):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        x = 12345
        frames = bytearray()
        for i in range(n):
            x = (1103515245 * x + 12345) & 0x7FFFFFFF
            frames += struct.pack("<h", (x >> 16) % 4000 - 2000)
        w.writeframes(bytes(frames))


def check_run(a, root, tmp):
    ssmd = root + a["bindir"] + "/ssmd"
    datadir = root + a["prefix"] + "/share"
    env = clean_env(root, tmp, datadir)
    env["LD_LIBRARY_PATH"] = root + a["libdir"]
    inp, out = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
    write_wav(inp, 30000)
    # run from the temp dir, so no relative path reaches the checkout either
    r = subprocess.run([ssmd, inp, "-o", out, "--log-level", "debug", "--progress", "never"],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
    print(r.stderr.strip())
    if r.returncode != 0:
        fail("installed ssmd exited %d" % r.returncode)
    want = datadir + "/ssmd/models/default.safetensors"
    if "model: " + want not in r.stderr:
        fail("ssmd did not load the installed model %s" % want)
    with wave.open(inp) as wi, wave.open(out) as wo:
        if wo.getnframes() != wi.getnframes():
            fail("output has %d frames, input %d" % (wo.getnframes(), wi.getnframes()))
        print("run: %s -> %s: %d frames in, %d out, model %s" % (inp, out, wi.getnframes(), wo.getnframes(), want))
    # and with nothing installed where it looks: the one-line error naming the
    # places.  The compiled-in datadir (<prefix>/share/ssmd/models) is the
    # real one, outside the staged tree: after `sudo meson install` it holds
    # the models, and that step of the search must find them instead.
    env["XDG_DATA_DIRS"] = os.path.join(tmp, "nowhere")
    real = a["prefix"] + "/share/ssmd/models/default.safetensors"
    installed = os.path.isfile(real)
    debug = ["--log-level", "debug", "--progress", "never"] if installed else []
    r = subprocess.run([ssmd, inp, "-o", out + "2.wav"] + debug, capture_output=True, text=True, env=env,
                       cwd=tmp, timeout=60)
    if installed:
        print("without the staged models: exit %d; %s is installed on this machine (the datadir step)"
              % (r.returncode, real))
        if r.returncode != 0 or "model: " + real not in r.stderr:
            fail("expected the installed %s to be found (the datadir step): %s" % (real, r.stderr.strip()[-300:]))
        return
    line = r.stderr.strip()
    print("without the models: exit %d: %s" % (r.returncode, line))
    if r.returncode != 2 or "\n" in line or "looked in" not in line or "pass --model FILE" not in line:
        fail("expected exit 2 and one line naming where it looked")


def check_embed(a, root, tmp):
    libdir = root + a["libdir"]
    env = clean_env(root, tmp, root + a["prefix"] + "/share")
    env["PKG_CONFIG_PATH"] = libdir + "/pkgconfig"
    env["PKG_CONFIG_SYSROOT_DIR"] = ""
    env["LD_LIBRARY_PATH"] = libdir
    pc = subprocess.run(["pkg-config", "--define-variable=prefix=" + root + a["prefix"], "--cflags", "--libs",
                         "ssmd"], capture_output=True, text=True, env=env)
    if pc.returncode != 0:
        fail("pkg-config ssmd: " + pc.stderr.strip())
    flags = pc.stdout.split()
    print("pkg-config --cflags --libs ssmd: " + pc.stdout.strip())
    if any(f.startswith("-I") and not f.startswith("-I" + root) for f in flags):
        fail("an include directory outside the installed tree")
    src = os.path.join(tmp, "embed.c")
    shutil.copy(os.path.join(a["source_root"], "examples", "embed.c"), src)  # the example, not the tree
    exe = os.path.join(tmp, "embed")
    san = os.environ.get("SSMD_TEST_SANITIZE", "none")
    san_flags = ["-fsanitize=" + san] if san not in ("", "none") else []
    cc = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Werror"] + san_flags + [src, "-o", exe]
                        + flags + ["-lm"],
                        capture_output=True, text=True, env=env, cwd=tmp)
    if cc.returncode != 0:
        fail("cc embed.c: " + cc.stderr.strip()[-2000:])
    r = subprocess.run([exe], capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
    print(r.stdout.strip() + r.stderr.strip())
    if r.returncode != 0 or "48000 samples in, 48000 out" not in r.stdout:
        fail("embed exited %d" % r.returncode)
    if root + a["prefix"] + "/share/ssmd/models/default.safetensors" not in r.stdout:
        fail("embed did not use the installed model")
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True, env=env).stdout
    lib = [l.strip() for l in ldd.splitlines() if "libssmd.so" in l]
    print("ldd: " + "; ".join(lib))
    if not lib or root not in lib[0]:
        fail("embed is not linked with the installed libssmd.so.0")


def help_options(prog, env):
    text = subprocess.run([prog, "--help"], capture_output=True, text=True, env=env, check=True).stdout
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)))


def env_vars_read(source_root):
    """The environment variables each program reads, from its sources:
    getenv("NAME") in daemon/src (ssmd) and the CLI_ENV_* endpoint variables
    of clients/src/client.h (one per client, by the macro each uses)."""
    daemon = set()
    for d in ("daemon/src",):
        for f in sorted(os.listdir(os.path.join(source_root, d))):
            if f.endswith(".c"):
                daemon |= set(re.findall(r'getenv\("([A-Z_]+)"\)', open(os.path.join(source_root, d, f)).read()))
    macros = dict(re.findall(r'#define (CLI_ENV_\w+) "(\w+)"', open(os.path.join(source_root, "clients/src/client.h")).read()))
    clients = {}
    for prog, src in (("ssm-push", "ssm_push.c"), ("ssm-sub", "ssm_sub.c"), ("ssm-ctl", "ssm_ctl.c")):
        text = open(os.path.join(source_root, "clients/src", src)).read()
        clients[prog] = {macros[m] for m in re.findall(r"cli_endpoint_default\((CLI_ENV_\w+)", text)}
    return dict(clients, ssmd=daemon)


def man_sections(man):
    """{SECTION: its roff text} of a page."""
    parts = re.split(r'^\.SH "?([^"\n]+)"?$', man, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def render_warnings(page):
    """What groff (-ww: every warning) and man-db's man -l say on stderr."""
    said = []
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_STDERR="1")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], capture_output=True, text=True, env=env)
    if r.returncode != 0 or r.stderr.strip():
        said.append("groff: exit %d: %s" % (r.returncode, r.stderr.strip()))
    if shutil.which("man"):
        r = subprocess.run(["man", "--warnings=w", "-l", page], capture_output=True, text=True, env=env)
        if r.returncode != 0 or r.stderr.strip() or "NAME" not in r.stdout:
            said.append("man -l: exit %d: %s" % (r.returncode, r.stderr.strip()))
    return said


def check_man(a, root, tmp):
    env = dict(os.environ, LD_LIBRARY_PATH=root + a["libdir"])
    reads = env_vars_read(a["source_root"])
    datadir_models = a["prefix"] + "/share/ssmd/models"
    for prog in ["ssmd", "ssm-push", "ssm-sub", "ssm-ctl"]:
        page = root + a["mandir"] + "/man1/%s.1" % prog
        if not os.path.exists(page):
            fail("no man page " + page)
        raw = open(page).read()
        man = raw.replace("\\-", "-")
        if not man.startswith(".TH %s 1" % prog.upper()):
            fail("%s: no .TH line" % page)
        opts = help_options(root + a["bindir"] + "/" + prog, env)
        missing = [o for o in opts if o not in man]
        if missing:
            fail("%s: options of --help missing from the man page: %s" % (page, " ".join(missing)))
        print("man: %s has all %d options of %s --help" % (page, len(opts), prog))
        sec = man_sections(man)
        want = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "EXIT STATUS"] + \
            (["FILES"] if prog == "ssmd" else [])
        lacking = [w for w in want if w not in sec]
        if lacking:
            fail("%s: sections missing: %s (has %s)" % (page, ", ".join(lacking), ", ".join(sec)))
        help_text = subprocess.run([root + a["bindir"] + "/" + prog, "--help"], capture_output=True, text=True,
                                   env=env, check=True).stdout
        summary = help_text.split("\n")[1].strip().rstrip(".")
        name_line = sec["NAME"].strip()
        if name_line != "%s - %s" % (prog, summary[0].lower() + summary[1:]):
            fail("%s: NAME is %r, not '%s - ' and the summary line of --help (%r)" % (page, name_line, prog, summary))
        env_missing = [v for v in sorted(reads[prog]) if v not in sec["ENVIRONMENT"]]
        if not reads[prog] or env_missing:
            fail("%s: ENVIRONMENT lacks %s (the program reads %s)" % (page, env_missing, sorted(reads[prog])))
        codes = re.findall(r"^\\fB(\d+)\\fR$", sec["EXIT STATUS"], re.M)
        if codes != ["0", "1", "2"]:
            fail("%s: EXIT STATUS lists %s, not 0 1 2" % (page, codes))
        if prog == "ssmd":
            for path in (a["sysconfdir"] + "/ssmd/ssmd.conf", datadir_models):
                if path not in sec["FILES"]:
                    fail("%s: FILES does not name %s" % (page, path))
        said = render_warnings(page)
        if said:
            fail("%s: rendering it warns: %s" % (page, "; ".join(said)))
        print("man: %s: NAME %r; %s; environment %s; renders without warnings"
              % (page, name_line, ", ".join(sec), " ".join(sorted(reads[prog]))))


def check_units(a, root, tmp):
    conf = root + a["sysconfdir"] + "/ssmd/ssmd.conf"
    text = open(conf).read()
    keys = re.findall(r"^#([a-z_]+) = ", text, re.M)
    uncommented = os.path.join(tmp, "all.conf")
    with open(uncommented, "w") as f:
        f.write(re.sub(r"^#([a-z_]+ = )", r"\1", text, flags=re.M))
    env = dict(os.environ, LD_LIBRARY_PATH=root + a["libdir"])
    ssmd = root + a["bindir"] + "/ssmd"
    r = subprocess.run([ssmd, "--config", uncommented, "--version"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        fail("the example config with every key uncommented: " + r.stderr.strip())
    opts = [o[2:].replace("-", "_") for o in help_options(ssmd, env)]
    missing = [o for o in opts if o not in keys and o not in ("config", "list_devices", "curve_keygen", "help",
                                                              "version") and not o.startswith("no_")]
    if missing:
        fail("%s lacks keys: %s" % (conf, " ".join(missing)))
    print("conf: %s lists %d keys, all commented, valid when uncommented" % (conf, len(keys)))
    units = [root + a["prefix"] + "/lib/systemd/system/ssmd.service",
             root + a["prefix"] + "/lib/systemd/user/ssmd.service"]
    for u in units:
        body = open(u).read()
        m = re.search(r"^ExecStart=(\S+)", body, re.M)
        print("unit %s: ExecStart=%s" % (u, m.group(1)))
        if "ExecStart=" + a["bindir"] + "/ssmd --config " + a["sysconfdir"] + "/ssmd/ssmd.conf" not in body \
                and "exec " + a["bindir"] + "/ssmd" not in body:
            fail("%s: ExecStart does not run %s/ssmd" % (u, a["bindir"]))
    if not shutil.which("systemd-analyze"):
        print("SKIP systemd-analyze verify: systemd-analyze not installed")
        return
    # verify copies whose programs point into the installed tree (the paths
    # as installed do not exist outside it; --root would want a whole OS there)
    run_dir = os.path.join(tmp, "run")  # --user needs a runtime directory
    os.makedirs(run_dir, mode=0o700)
    for i, (u, flag) in enumerate([(units[0], "--system"), (units[1], "--user")]):
        d = os.path.join(tmp, "verify%d" % i)
        os.makedirs(d)
        copy = os.path.join(d, "ssmd.service")
        with open(copy, "w") as f:
            f.write(open(u).read().replace(a["bindir"] + "/ssmd", root + a["bindir"] + "/ssmd"))
        r = subprocess.run(["systemd-analyze", "verify", flag, "--man=no", copy],
                           capture_output=True, text=True,
                           env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice", XDG_RUNTIME_DIR=run_dir))
        out = (r.stdout + r.stderr).strip()
        print("systemd-analyze verify %s %s: exit %d%s" % (flag, u, r.returncode, (": " + out) if out else ""))
        if r.returncode != 0 or "ssmd.service" in out:
            fail("systemd-analyze verify found problems in " + u)


def main():
    names = ["check", "build_dir", "prefix", "bindir", "libdir", "mandir", "sysconfdir", "source_root"]
    if len(sys.argv) != len(names) + 1:
        raise SystemExit(__doc__)
    a = dict(zip(names, sys.argv[1:]))
    tmp = tempfile.mkdtemp(prefix="ssmd_install_")
    try:
        root = os.path.join(tmp, "root")
        install(a["build_dir"], root)
        {"run": check_run, "embed": check_embed, "man": check_man, "units": check_units}[a["check"]](a, root, tmp)
        print("ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

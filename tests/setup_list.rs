//! Every program the project runs is installed by its own set-up.
//!
//! The code, tests and benches run programs with `Command::new` and a literal; the
//! scripts, `.ci/run` and the Makefile run them as shell commands. Each such
//! program must be either provided by an entry of `scripts/packages.list`
//! (which `scripts/setup.sh` installs) or part of the base system: a Debian
//! package of priority required or important. A program that is neither
//! works on a machine where someone installed it by hand and fails on a
//! fresh one, so this test fails naming the program, where it is run, and
//! the package to list.
//!
//! No engine is needed: this runs with `cargo test` anywhere (on a
//! non-Debian machine it fails, saying that `dpkg` is missing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

// --- the list ----------------------------------------------------------------

/// `scripts/packages.list`: program → "kind name" of the entry providing it.
#[derive(Debug, Default)]
struct List {
    programs: BTreeMap<String, String>,
}

fn parse_list(text: &str) -> Result<List, String> {
    let mut list = List::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, name, progs @ ..] = words.as_slice() else {
            return Err(format!("line {}: want KIND NAME PROGRAMS...: {raw}", i + 1));
        };
        if !matches!(*kind, "apt" | "crate" | "image") {
            return Err(format!("line {}: unknown kind {kind:?}", i + 1));
        }
        if *kind == "crate" && !name.contains('@') {
            return Err(format!(
                "line {}: crate {name} needs a pinned @VERSION",
                i + 1
            ));
        }
        if progs.is_empty() {
            return Err(format!("line {}: no programs (use - for none)", i + 1));
        }
        for p in progs.iter().filter(|p| **p != "-") {
            list.programs
                .insert(p.to_string(), format!("{kind} {name}"));
        }
    }
    Ok(list)
}

fn the_list() -> List {
    let path = Path::new(REPO).join("scripts/packages.list");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_list(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// --- programs run from Rust --------------------------------------------------

/// `(program, "file:line")` for every `Command::new` (or the e2e harness's
/// `tool`) of a string literal under `dir`.
fn rust_programs(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_programs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                // `tool("…")` is the e2e harness's checked `Command::new`.
                for call in ["Command::new(\"", "tool(\""] {
                    let mut rest = line;
                    while let Some(at) = rest.find(call) {
                        rest = &rest[at + call.len()..];
                        if let Some(end) =
                            rest.find('"').filter(|&e| looks_like_program(&rest[..e]))
                        {
                            out.push((rest[..end].to_string(), where_(&path, i)));
                        }
                    }
                }
            }
        }
    }
}

/// A word that can name a program: not an option, a pattern or punctuation.
fn looks_like_program(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_alphanumeric() || "./_[".contains(c))
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/+-[".contains(c))
}

fn where_(path: &Path, line0: usize) -> String {
    let rel = path.strip_prefix(REPO).unwrap_or(path);
    format!("{}:{}", rel.display(), line0 + 1)
}

// --- programs run from shell -------------------------------------------------

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "function", "select", "!", "{", "}", "[[", "]]", "time",
];
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];
/// Programs whose first non-option argument is itself a command.
const WRAPPERS: &[&str] = &[
    "exec", "command", "builtin", "nohup", "setsid", "env", "sudo", "nice", "timeout", "xargs",
    "time",
];

/// The words in command position of a shell text, with their line numbers
/// (1-based): a simple tokenizer that knows quotes, `$( )`, `<( )`, here
/// documents, `case` patterns, `for` lists, comments, assignments,
/// redirections and wrappers such as `timeout 5 docker`. Words that are not
/// plain literals (`"$x"`, `$(…)`) are not programs the list can name.
fn shell_commands(text: &str) -> Vec<(String, usize)> {
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        Code { depth: usize },
        DQuote,
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut modes = vec![Mode::Code { depth: 0 }];
    let mut line = 1;
    let mut cmd_pos = true;
    let mut wrapper = false; // after a wrapper: skip options and durations
    let mut skip_words = false; // `for x in …`, `case x in`: no commands until a separator
    let mut in_pattern = false; // inside a `case`, before the pattern's `)`
    let mut case_depth = 0usize;
    let mut redirect = false; // the next word is a file name
    let mut heredocs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mode = *modes.last().unwrap();
        if c == '\n' {
            line += 1;
            i += 1;
            // Here documents start on the next line and end at their word.
            for end in std::mem::take(&mut heredocs) {
                loop {
                    let start = i;
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                    let body: String = chars[start..i].iter().collect();
                    if i < chars.len() {
                        i += 1;
                        line += 1;
                    }
                    if body.trim() == end || i >= chars.len() {
                        break;
                    }
                }
            }
            if mode != Mode::DQuote {
                cmd_pos = true;
                skip_words = false;
                wrapper = false;
            }
            continue;
        }
        if mode == Mode::DQuote {
            match c {
                '\\' => i += 2,
                '"' => {
                    modes.pop();
                    i += 1;
                }
                '$' if chars.get(i + 1) == Some(&'(') && chars.get(i + 2) == Some(&'(') => {
                    // `$((…))`: arithmetic, no command.
                    while i + 1 < chars.len() && !(chars[i] == ')' && chars[i + 1] == ')') {
                        i += 1;
                    }
                    i += 2;
                }
                '$' if chars.get(i + 1) == Some(&'(') => {
                    modes.push(Mode::Code { depth: 0 });
                    cmd_pos = true;
                    skip_words = false;
                    i += 2;
                }
                _ => i += 1,
            }
            continue;
        }
        let Mode::Code { depth } = mode else {
            unreachable!()
        };
        match c {
            ' ' | '\t' => i += 1,
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                line += 1;
                i += 2;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ';' | '&' | '|' => {
                if c == ';' && chars.get(i + 1) == Some(&';') && case_depth > 0 {
                    in_pattern = true;
                    i += 1;
                }
                cmd_pos = true;
                skip_words = false;
                wrapper = false;
                i += 1;
            }
            '(' => {
                if let Mode::Code { depth } = modes.last_mut().unwrap() {
                    *depth += 1;
                }
                cmd_pos = true;
                i += 1;
            }
            ')' => {
                if in_pattern {
                    in_pattern = false;
                    cmd_pos = true;
                } else if depth == 0 && modes.len() > 1 {
                    modes.pop();
                    // Back in a double-quoted string or in the outer
                    // command's words: nothing here starts a command.
                    cmd_pos = false;
                } else if let Mode::Code { depth } = modes.last_mut().unwrap() {
                    *depth = depth.saturating_sub(1);
                }
                i += 1;
            }
            '<' | '>' => {
                if c == '<' && chars.get(i + 1) == Some(&'(') {
                    modes.push(Mode::Code { depth: 0 });
                    cmd_pos = true;
                    redirect = false;
                    skip_words = false;
                    i += 2;
                    continue;
                }
                if c == '<' && chars.get(i + 1) == Some(&'<') && chars.get(i + 2) != Some(&'<') {
                    // <<WORD, <<-WORD, <<'WORD', <<"WORD"
                    i += 2;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                    }
                    while chars.get(i) == Some(&' ') {
                        i += 1;
                    }
                    let mut end = String::new();
                    while let Some(&ch) = chars.get(i) {
                        if ch.is_whitespace() || ";&|<>()".contains(ch) {
                            break;
                        }
                        if ch != '\'' && ch != '"' {
                            end.push(ch);
                        }
                        i += 1;
                    }
                    heredocs.push(end);
                    continue;
                }
                i += 1;
                while matches!(chars.get(i), Some('<' | '>' | '&')) {
                    i += 1;
                }
                redirect = true;
            }
            '`' => {
                cmd_pos = true;
                i += 1;
            }
            _ => {
                // One word, quotes and expansions included.
                let start_line = line;
                let start = i;
                let mut word = String::new();
                let mut literal = true;
                while i < chars.len() {
                    let ch = chars[i];
                    if ch == '(' && word.ends_with('=') {
                        // An array assignment `a=(…)`/`a+=(…)`: values, not commands.
                        literal = false;
                        let mut quote = None;
                        while i < chars.len() {
                            let q = chars[i];
                            i += 1;
                            match (quote, q) {
                                (None, '"' | '\'') => quote = Some(q),
                                (Some(open), _) if q == open => quote = None,
                                (None, ')') => break,
                                _ => {}
                            }
                        }
                        continue;
                    }
                    if ch.is_whitespace() || ";&|<>()`".contains(ch) {
                        break;
                    }
                    match ch {
                        '\\' if chars.get(i + 1) != Some(&'\n') => {
                            word.push(ch);
                            if let Some(&n) = chars.get(i + 1) {
                                word.push(n);
                            }
                            i += 2;
                        }
                        '\'' => {
                            literal = false;
                            i += 1;
                            while i < chars.len() && chars[i] != '\'' {
                                if chars[i] == '\n' {
                                    line += 1;
                                }
                                i += 1;
                            }
                            i += 1;
                        }
                        '"' => {
                            literal = false;
                            // Scan the string for `$(…)` in the main loop.
                            break;
                        }
                        '$' if chars.get(i + 1) == Some(&'{') => {
                            literal = false;
                            while i < chars.len() && chars[i] != '}' {
                                i += 1;
                            }
                            i += 1;
                        }
                        '$' if chars.get(i + 1) == Some(&'(') && chars.get(i + 2) == Some(&'(') => {
                            literal = false;
                            while i + 1 < chars.len() && !(chars[i] == ')' && chars[i + 1] == ')') {
                                i += 1;
                            }
                            i += 2;
                        }
                        '$' if chars.get(i + 1) == Some(&'(') => {
                            literal = false;
                            word.push('$');
                            i += 1;
                            break;
                        }
                        '$' => {
                            literal = false;
                            word.push(ch);
                            i += 1;
                        }
                        _ => {
                            word.push(ch);
                            i += 1;
                        }
                    }
                }
                let quote_next = chars.get(i) == Some(&'"');
                if quote_next {
                    modes.push(Mode::DQuote);
                    i += 1;
                }
                if word.ends_with('$') && chars.get(i) == Some(&'(') {
                    // `$(…)`: its commands are found by the main loop; the
                    // word around it is not a command.
                    modes.push(Mode::Code { depth: 0 });
                    i += 1;
                    cmd_pos = true;
                    skip_words = false;
                    continue;
                }
                if i == start {
                    // A character the word loop stopped on at once.
                    i += 1;
                    continue;
                }
                if redirect {
                    redirect = false;
                    continue;
                }
                if in_pattern {
                    if word == "esac" {
                        in_pattern = false;
                        case_depth = case_depth.saturating_sub(1);
                    }
                    continue;
                }
                if skip_words {
                    if word == "in" && case_depth > 0 && !in_pattern {
                        // `case x in`: patterns follow.
                        in_pattern = true;
                        skip_words = false;
                    }
                    continue;
                }
                if !cmd_pos {
                    continue;
                }
                if wrapper
                    && (word.starts_with('-')
                        || word
                            .chars()
                            .all(|c| c.is_ascii_digit() || ".smhd".contains(c)))
                {
                    continue;
                }
                let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+')
                });
                if is_assignment || (quote_next && word.contains('=')) {
                    continue; // stays in command position
                }
                if !literal || quote_next || word.is_empty() {
                    cmd_pos = false;
                    continue;
                }
                match word.as_str() {
                    "case" => {
                        case_depth += 1;
                        skip_words = true;
                        cmd_pos = false;
                    }
                    "for" | "select" => {
                        skip_words = true;
                        cmd_pos = false;
                    }
                    "esac" => case_depth = case_depth.saturating_sub(1),
                    w if KEYWORDS.contains(&w) => {}
                    w if !looks_like_program(w) => cmd_pos = false,
                    w => {
                        out.push((w.to_string(), start_line));
                        wrapper = WRAPPERS.contains(&w);
                        cmd_pos = wrapper;
                    }
                }
            }
        }
    }
    out
}

/// Function names defined in a shell text (`name() {`).
fn shell_functions(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches("function ");
            let (name, rest) = l.split_once("()")?;
            let name = name.trim();
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && rest.trim_start().starts_with('{'))
            .then(|| name.to_string())
        })
        .collect()
}

/// The recipes of a Makefile as shell text, with its `$(VAR)`s replaced by
/// their values and `$$` by `$`; each recipe line keeps its line number.
fn makefile_recipes(text: &str) -> String {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for l in text.lines() {
        for op in ["?=", ":=", "="] {
            if let Some((k, v)) = l.split_once(op) {
                let k = k.trim();
                if !l.starts_with('\t')
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    vars.entry(k.to_string())
                        .or_insert_with(|| v.trim().to_string());
                }
                break;
            }
        }
    }
    fn expand(s: &str, vars: &BTreeMap<String, String>, depth: usize) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(r) = rest.strip_prefix("$$") {
                out.push('$');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("$(") {
                let end = r.find(')').unwrap_or(r.len());
                let name = &r[..end];
                let value = vars.get(name).cloned().unwrap_or_default();
                out.push_str(&if depth < 5 {
                    expand(&value, vars, depth + 1)
                } else {
                    value
                });
                rest = r.get(end + 1..).unwrap_or("");
            } else {
                out.push('$');
                rest = &rest[1..];
            }
        }
        out.push_str(rest);
        out
    }
    text.lines()
        .map(|l| match l.strip_prefix('\t') {
            Some(recipe) => expand(recipe.trim_start_matches(['@', '-', '+']), &vars, 0),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(program, "file:line")` for the shell the project runs.
fn shell_programs(out: &mut Vec<(String, String)>) {
    let repo = Path::new(REPO);
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("scripts"))
        .expect("read scripts/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.sort();
    files.push(repo.join(".ci/run"));
    let lib = std::fs::read_to_string(repo.join("scripts/lib.sh")).unwrap_or_default();
    let mut functions = shell_functions(&lib);
    for f in &files {
        functions.extend(shell_functions(
            &std::fs::read_to_string(f).unwrap_or_default(),
        ));
    }
    let mut texts: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| {
            (
                f.clone(),
                std::fs::read_to_string(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())),
            )
        })
        .collect();
    let makefile = repo.join("Makefile");
    let mk = std::fs::read_to_string(&makefile).expect("read Makefile");
    texts.push((makefile, makefile_recipes(&mk)));
    for (path, text) in texts {
        for (word, line) in shell_commands(&text) {
            if functions.contains(&word) || BUILTINS.contains(&word.as_str()) {
                continue;
            }
            out.push((word, where_(&path, line - 1)));
        }
    }
}

// --- the base system ------------------------------------------------------------

/// Why `program` is fine, or what to do about it.
fn judge(program: &str, list: &List) -> Result<String, String> {
    if program.contains('/') {
        let p = Path::new(program);
        if p.is_relative() {
            return Ok("a path in the repository".into());
        }
        let base = p.file_name().and_then(|n| n.to_str()).unwrap_or(program);
        return judge(base, list);
    }
    if let Some(entry) = list.programs.get(program) {
        return Ok(format!("listed: {entry}"));
    }
    let Some(path) = which(program) else {
        return Err(format!(
            "{program} is not installed and no entry of scripts/packages.list provides it"
        ));
    };
    let Some(pkg) = debian_package(&path) else {
        return Err(format!(
            "{program} ({}) belongs to no Debian package and is not an `image` entry of scripts/packages.list",
            path.display()
        ));
    };
    let priority = run("dpkg-query", &["-W", "-f=${Priority}", &pkg]).unwrap_or_default();
    if matches!(priority.trim(), "required" | "important") {
        Ok(format!("base: {pkg} ({})", priority.trim()))
    } else {
        Err(format!(
            "{program} comes from the Debian package {pkg} (priority {}), which is not in the base system: add `apt {pkg} {program}` to scripts/packages.list",
            priority.trim()
        ))
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The package owning `path`, trying the /usr-merged twins too.
fn debian_package(path: &Path) -> Option<String> {
    let mut candidates = vec![path.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path) {
        candidates.push(real);
    }
    let twins: Vec<PathBuf> = candidates
        .iter()
        .filter_map(|p| {
            let s = p.to_str()?;
            for (a, b) in [
                ("/usr/bin/", "/bin/"),
                ("/usr/sbin/", "/sbin/"),
                ("/bin/", "/usr/bin/"),
                ("/sbin/", "/usr/sbin/"),
            ] {
                if let Some(rest) = s.strip_prefix(a) {
                    return Some(PathBuf::from(format!("{b}{rest}")));
                }
            }
            None
        })
        .collect();
    candidates.extend(twins);
    candidates.iter().find_map(|p| {
        let out = run("dpkg", &["-S", p.to_str()?])?;
        let pkg = out.lines().next()?.split(':').next()?.trim().to_string();
        (!pkg.is_empty() && !pkg.contains(' ')).then_some(pkg)
    })
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

// --- the tests ------------------------------------------------------------------

#[test]
fn every_program_the_project_runs_is_listed_or_in_the_base_system() {
    assert!(
        run("dpkg", &["--version"]).is_some(),
        "dpkg is missing: this check knows Debian's base system only"
    );
    let list = the_list();
    let mut programs = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_programs(&Path::new(REPO).join(dir), &mut programs);
    }
    let from_rust = programs.len();
    shell_programs(&mut programs);
    assert!(
        from_rust >= 5,
        "found only {from_rust} Command::new calls: the scan is broken"
    );
    assert!(
        programs.len() - from_rust >= 20,
        "found only {} shell commands: the scan is broken",
        programs.len() - from_rust
    );

    let mut by_program: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, at) in programs {
        by_program.entry(p).or_default().push(at);
    }
    let mut problems = Vec::new();
    for (program, places) in &by_program {
        match judge(program, &list) {
            Ok(why) => eprintln!("ok  {program:<18} {why}"),
            Err(e) => problems.push(format!("{e} (run at {})", places.join(", "))),
        }
    }
    assert!(
        problems.is_empty(),
        "programs a fresh machine would lack:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_programs_the_suite_is_known_to_need_are_found_by_the_scan() {
    // Pins the scan itself: these are run today, each in its own way.
    let mut programs = Vec::new();
    rust_programs(&Path::new(REPO).join("tests"), &mut programs);
    rust_programs(&Path::new(REPO).join("src"), &mut programs);
    shell_programs(&mut programs);
    let found: BTreeSet<&str> = programs.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "htpasswd",
        "nsenter",
        "docker",
        "dockerd",
        "docker-registry",
        "curl",
        "gcc",
        "cargo",
        "setsid",
        "apt-get",
    ] {
        assert!(
            found.contains(want),
            "{want} is run by the project but the scan missed it; found {found:?}"
        );
    }
    for not in [
        "root:x:0:0:root:/root:/bin/sh",
        "need",
        "log",
        "die",
        "--push",
        "in",
        "then",
        "echo",
    ] {
        assert!(
            !found.contains(not),
            "{not:?} is not a program but the scan reported it"
        );
    }
}

#[test]
fn a_program_missing_from_the_list_is_reported_with_its_package() {
    // htpasswd is optional-priority (apache2-utils): without its line it
    // must be refused, with the package named when it is installed here.
    let list = parse_list("apt curl curl\nimage - cargo docker\n").unwrap();
    let err = judge("htpasswd", &list).unwrap_err();
    assert!(err.contains("htpasswd"), "{err}");
    assert!(
        err.contains("apache2-utils") || err.contains("not installed"),
        "{err}"
    );
    let with = parse_list("apt apache2-utils htpasswd\n").unwrap();
    assert!(judge("htpasswd", &with).is_ok());
    // A required package's program is base.
    assert!(
        judge("sed", &list).unwrap().starts_with("base:"),
        "sed is in Debian's base"
    );
    // Not installed, not listed.
    assert!(judge("no-such-program-podvisor", &list).is_err());
}

#[test]
fn the_list_parses_and_rejects_bad_lines() {
    assert!(parse_list("apt foo\n").is_err(), "a line without programs");
    assert!(
        parse_list("crate cargo-fuzz cargo-fuzz\n").is_err(),
        "an unpinned crate"
    );
    assert!(parse_list("pip foo foo\n").is_err(), "an unknown kind");
    let l = parse_list("# c\napt docker.io dockerd # engine\nimage libc6-dev -\n").unwrap();
    assert_eq!(
        l.programs.get("dockerd").map(String::as_str),
        Some("apt docker.io")
    );
    assert_eq!(l.programs.len(), 1);
    the_list();
}

#[test]
fn the_shell_scanner_finds_commands_in_every_position() {
    let text = r#"
# comment: notacommand
x="$(alpha --flag | beta)"; gamma
if delta; then epsilon "$(zeta)"; fi
setsid eta >"$dir/log" 2>&1 </dev/null &
timeout 5 theta --x
cat <<'EOF'
iota kappa
EOF
case "$1" in
  --push) lambda ;;
  -h|--help) mu ;;
  *) nu ;;
esac
for p in $(xi) omicron; do pi "$p"; done
f() { rho; }
while read -r a b; do sigma; done < <(tau)
y=1 upsilon
"$here/phi.sh" arg
echo "$(tr -d ' \n')" && omega
echo "$((2 + SECONDS))"
local arr=(-c "x") && arr+=(-d) && psi
"#;
    let words: Vec<String> = shell_commands(text).into_iter().map(|(w, _)| w).collect();
    let want = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "setsid", "eta", "timeout", "theta",
        "cat", "lambda", "mu", "nu", "xi", "pi", "f", "rho", "read", "sigma", "tau", "upsilon",
        "echo", "tr", "omega", "echo", "local", "psi",
    ];
    assert_eq!(words, want, "scanned: {words:?}");
    assert_eq!(shell_functions(text), BTreeSet::from(["f".to_string()]));
    let lines: Vec<usize> = shell_commands("a\nb \\\n  --c\nd\n")
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lines, [1, 2, 4]);
}

#[test]
fn makefile_variables_are_expanded_in_recipes() {
    let mk = "CARGO ?= cargo\nENSURE = x=\"$$(scripts/e.sh)\"; eval \"$$x\"\nall:\n\t@$(CARGO) build\n\t$(ENSURE); awk 1\n";
    let recipes = makefile_recipes(mk);
    let words: Vec<String> = shell_commands(&recipes)
        .into_iter()
        .map(|(w, _)| w)
        .collect();
    assert_eq!(words, ["cargo", "scripts/e.sh", "eval", "awk"], "{recipes}");
}

//! Go's `fmt.Sprintf`, `strconv.FormatFloat` and `json.Marshal` over JSON values.
//!
//! Crossplane formats strings with Go's `fmt` (string `Format` transforms, `Combine` patches,
//! `%v` inside `Join`, `Trim`, `Regexp`, `Replace` and `Convert`) and hashes non-string values
//! through `encoding/json`. Users' Compositions depend on the exact bytes those produce, so this
//! module reproduces them for the values a Kubernetes unstructured object can hold: `nil`,
//! `bool`, `int64`, `float64`, `string`, `map[string]interface {}` and `[]interface {}`.
//!
//! A [`Value`] maps onto those Go types as follows: integers that fit `i64` are `int64`, every
//! other number (fractions, and integers beyond `i64`) is `float64`; a number written with a
//! fraction (`3.0`) stays `float64`, as it does in Go before a JSON round trip.
//!
//! Known gaps, rarely reachable from a Composition: `%p` prints `0x0` for maps and
//! slices (Go prints a memory address), and `%q`'s notion of a printable rune approximates
//! Go's `unicode.IsPrint` tables (controls, separators, format characters, private-use and
//! non-characters are escaped; unassigned code points are not recognised).

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A JSON value seen as the Go value `encoding/json` would produce.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GoValue<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Map(&'a Map<String, Value>),
    Slice(&'a [Value]),
}

impl<'a> GoValue<'a> {
    pub(crate) fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => GoValue::Nil,
            Value::Bool(b) => GoValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) if !n.is_f64() => GoValue::Int(i),
                _ => GoValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => GoValue::Str(s),
            Value::Array(a) => GoValue::Slice(a),
            Value::Object(m) => GoValue::Map(m),
        }
    }

    /// Go's `%T` / `reflect.Type.String()` of the value.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            GoValue::Nil => "<nil>",
            GoValue::Bool(_) => "bool",
            GoValue::Int(_) => "int64",
            GoValue::Float(_) => "float64",
            GoValue::Str(_) => "string",
            GoValue::Map(_) => "map[string]interface {}",
            GoValue::Slice(_) => "[]interface {}",
        }
    }
}

/// Go's `%T` of a JSON value (`string`, `int64`, `float64`, `bool`, `<nil>`,
/// `map[string]interface {}`, `[]interface {}`).
pub fn go_type_name(v: &Value) -> &'static str {
    GoValue::of(v).type_name()
}

/// Go's `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[&Value]) -> String {
    // Room for the format and a short argument or two: one allocation for most names.
    let mut p = Printer {
        buf: String::with_capacity(format.len() + 16 * args.len()),
        ..Printer::default()
    };
    p.do_printf(format, args);
    p.buf
}

/// Go's `fmt.Sprintf("%v", v)`.
pub fn sprint_value(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

// ---------------------------------------------------------------------------------------------
// The printer: a port of the state machine in Go's fmt/print.go and fmt/format.go.
// ---------------------------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Flags {
    wid_present: bool,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: usize,
    prec: usize,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
    reordered: bool,
    good_arg_num: bool,
}

const LDIGITS: &[u8; 17] = b"0123456789abcdefx";
const UDIGITS: &[u8; 17] = b"0123456789ABCDEFX";

/// Go rejects widths and precisions above a million.
fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

/// Go's `parsenum`: digits from `start`; returns (number, found, next index).
fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num: i64 = 0;
    let mut isnum = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if too_large(num) {
            return (0, false, end);
        }
        num = num * 10 + i64::from(s[i] - b'0');
        isnum = true;
        i += 1;
    }
    (usize::try_from(num).unwrap_or(0), isnum, i)
}

/// Go's `parseArgNumber` on `s` starting at `[`: (zero-based index, bytes consumed, ok).
fn parse_arg_number(s: &[u8]) -> (i64, usize, bool) {
    if s.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..s.len() {
        if s[i] == b']' {
            let (width, ok, newi) = parse_num(s, 1, i);
            if !ok || newi != i {
                return (0, i + 1, false);
            }
            return (width as i64 - 1, i + 1, true);
        }
    }
    (0, 1, false)
}

impl Printer {
    fn arg_number(
        &mut self,
        arg_num: usize,
        format: &[u8],
        i: usize,
        num_args: usize,
    ) -> (usize, usize, bool) {
        if format.len() <= i || format[i] != b'[' {
            return (arg_num, i, false);
        }
        self.reordered = true;
        let (index, wid, ok) = parse_arg_number(&format[i..]);
        if ok && 0 <= index && (index as usize) < num_args {
            return (index as usize, i + wid, true);
        }
        self.good_arg_num = false;
        (arg_num, i + wid, ok)
    }

    /// Go's `intFromArg`: (value, is an int, next argument).
    fn int_from_arg(args: &[&Value], arg_num: usize) -> (i64, bool, usize) {
        if arg_num >= args.len() {
            return (0, false, arg_num);
        }
        let (num, is_int) = match GoValue::of(args[arg_num]) {
            GoValue::Int(i) => (i, true),
            _ => (0, false),
        };
        if too_large(num) {
            return (0, false, arg_num + 1);
        }
        (num, is_int, arg_num + 1)
    }

    fn do_printf(&mut self, format: &str, args: &[&Value]) {
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut after_index;
        self.reordered = false;
        let mut i = 0usize;
        while i < end {
            self.good_arg_num = true;
            let lasti = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            if i > lasti {
                self.buf.push_str(&format[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1; // skip '%'
            self.f = Flags::default();
            while i < end {
                match fb[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = true,
                    b'+' => self.f.plus = true,
                    b'-' => self.f.minus = true,
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }

            (arg_num, i, after_index) = self.arg_number(arg_num, fb, i, args.len());

            // Width.
            if i < end && fb[i] == b'*' {
                i += 1;
                let (wid, present, next) = Self::int_from_arg(args, arg_num);
                arg_num = next;
                self.f.wid_present = present;
                if !present {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                if wid < 0 {
                    self.f.wid = wid.unsigned_abs() as usize;
                    self.f.minus = true;
                    self.f.zero = false;
                } else {
                    self.f.wid = wid as usize;
                }
                after_index = false;
            } else {
                let (wid, present, next) = parse_num(fb, i, end);
                self.f.wid = wid;
                self.f.wid_present = present;
                i = next;
                if after_index && self.f.wid_present {
                    self.good_arg_num = false;
                }
            }

            // Precision.
            if i + 1 < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (arg_num, i, after_index) = self.arg_number(arg_num, fb, i, args.len());
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (prec, present, next) = Self::int_from_arg(args, arg_num);
                    arg_num = next;
                    self.f.prec_present = present;
                    self.f.prec = prec.max(0) as usize;
                    if prec < 0 {
                        self.f.prec_present = false;
                    }
                    if !self.f.prec_present {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (prec, present, next) = parse_num(fb, i, end);
                    i = next;
                    self.f.prec = if present { prec } else { 0 };
                    self.f.prec_present = true;
                }
            }

            if !after_index {
                (arg_num, i, _) = self.arg_number(arg_num, fb, i, args.len());
            }

            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }

            let verb = format[i..].chars().next().unwrap_or('\u{FFFD}');
            i += verb.len_utf8();

            if verb == '%' {
                self.buf.push('%');
            } else if !self.good_arg_num {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(BADINDEX)");
            } else if arg_num >= args.len() {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(MISSING)");
            } else {
                if verb == 'v' || verb == 'w' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                self.print_arg(args[arg_num], verb);
                arg_num += 1;
            }
        }

        if !self.reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, arg) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                let gv = GoValue::of(arg);
                if matches!(gv, GoValue::Nil) {
                    self.buf.push_str("<nil>");
                } else {
                    self.buf.push_str(gv.type_name());
                    self.buf.push('=');
                    self.print_arg(arg, 'v');
                }
            }
            self.buf.push(')');
        }
    }

    /// Go's `printArg` for a top-level operand.
    fn print_arg(&mut self, arg: &Value, verb: char) {
        let gv = GoValue::of(arg);
        if let GoValue::Nil = gv {
            match verb {
                'T' | 'v' => self.pad_string("<nil>"),
                _ => self.bad_verb(verb, gv),
            }
            return;
        }
        match verb {
            'T' => {
                self.fmt_s(gv.type_name());
                return;
            }
            'p' => {
                self.fmt_pointer(gv, verb);
                return;
            }
            _ => {}
        }
        self.print_value(gv, verb);
    }

    fn print_value(&mut self, gv: GoValue<'_>, verb: char) {
        match gv {
            GoValue::Nil => {
                // A nil inside an interface{} element (depth > 0).
                if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            GoValue::Bool(b) => self.fmt_bool(b, verb, gv),
            GoValue::Int(i) => self.fmt_integer(i as u64, true, verb, gv),
            GoValue::Float(x) => self.fmt_float_verb(x, verb, gv),
            GoValue::Str(s) => self.fmt_string(s, verb, gv),
            GoValue::Map(m) => {
                if verb == 'w' {
                    self.bad_verb(verb, gv);
                    return;
                }
                if self.f.sharp_v {
                    self.buf.push_str("map[string]interface {}{");
                } else {
                    self.buf.push_str("map[");
                }
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (k, key) in keys.into_iter().enumerate() {
                    if k > 0 {
                        if self.f.sharp_v {
                            self.buf.push_str(", ");
                        } else {
                            self.buf.push(' ');
                        }
                    }
                    self.print_value(GoValue::Str(key), verb);
                    self.buf.push(':');
                    let v = m.get(key.as_str()).map(GoValue::of).unwrap_or(GoValue::Nil);
                    self.print_value(v, verb);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            GoValue::Slice(items) => {
                if verb == 'w' {
                    self.bad_verb(verb, gv);
                    return;
                }
                if self.f.sharp_v {
                    self.buf.push_str("[]interface {}{");
                } else {
                    self.buf.push('[');
                }
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        if self.f.sharp_v {
                            self.buf.push_str(", ");
                        } else {
                            self.buf.push(' ');
                        }
                    }
                    self.print_value(GoValue::of(item), verb);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
        }
    }

    fn bad_verb(&mut self, verb: char, gv: GoValue<'_>) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if let GoValue::Nil = gv {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(gv.type_name());
            self.buf.push('=');
            self.print_value(gv, 'v');
        }
        self.buf.push(')');
    }

    fn fmt_pointer(&mut self, gv: GoValue<'_>, verb: char) {
        match gv {
            // Go prints the map's or slice's address; a JSON value has none to show.
            GoValue::Map(_) | GoValue::Slice(_) => {
                let saved = self.f.sharp;
                self.f.sharp = !self.f.sharp;
                self.fmt_integer_base(0, 16, false, verb, LDIGITS);
                self.f.sharp = saved;
            }
            _ => self.bad_verb(verb, gv),
        }
    }

    // ----- padding -----

    fn write_padding(&mut self, n: usize) {
        let pad = if self.f.zero && !self.f.minus {
            '0'
        } else {
            ' '
        };
        for _ in 0..n {
            self.buf.push(pad);
        }
    }

    fn pad_string(&mut self, s: &str) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.buf.push_str(s);
            return;
        }
        let width = self.f.wid.saturating_sub(s.chars().count());
        if !self.f.minus {
            self.write_padding(width);
            self.buf.push_str(s);
        } else {
            self.buf.push_str(s);
            self.write_padding(width);
        }
    }

    // ----- booleans -----

    fn fmt_bool(&mut self, b: bool, verb: char, gv: GoValue<'_>) {
        match verb {
            't' | 'v' => self.pad_string(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, gv),
        }
    }

    // ----- integers -----

    fn fmt_integer(&mut self, v: u64, signed: bool, verb: char, gv: GoValue<'_>) {
        match verb {
            'v' => {
                if self.f.sharp_v && !signed {
                    let saved = self.f.sharp;
                    self.f.sharp = true;
                    self.fmt_integer_base(v, 16, signed, verb, LDIGITS);
                    self.f.sharp = saved;
                } else {
                    self.fmt_integer_base(v, 10, signed, verb, LDIGITS);
                }
            }
            'd' => self.fmt_integer_base(v, 10, signed, verb, LDIGITS),
            'b' => self.fmt_integer_base(v, 2, signed, verb, LDIGITS),
            'o' | 'O' => self.fmt_integer_base(v, 8, signed, verb, LDIGITS),
            'x' => self.fmt_integer_base(v, 16, signed, verb, LDIGITS),
            'X' => self.fmt_integer_base(v, 16, signed, verb, UDIGITS),
            'c' => {
                let c = rune_of(v);
                let mut s = String::new();
                s.push(c);
                self.pad_string(&s);
            }
            // Go quotes only values up to the last code point; larger ones are a bad verb.
            'q' if v <= 0x10FFFF => {
                let c = rune_of(v);
                let mut s = String::new();
                quote_rune_into(&mut s, c, self.f.plus);
                self.pad_string(&s);
            }
            'U' => self.fmt_unicode(v),
            _ => self.bad_verb(verb, gv),
        }
    }

    fn fmt_integer_base(&mut self, u: u64, base: u64, signed: bool, verb: char, digits: &[u8; 17]) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative { u.wrapping_neg() } else { u };

        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let old_zero = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid;
                self.write_padding(w);
                self.f.zero = old_zero;
                return;
            }
        } else if self.f.zero && !self.f.minus && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }

        // Digits, least significant first.
        let mut out: Vec<u8> = Vec::with_capacity(24);
        loop {
            out.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while out.len() < prec {
            out.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => out.extend_from_slice(b"b0"),
                8 if out.last() != Some(&b'0') => out.push(b'0'),
                16 => {
                    out.push(digits[16]);
                    out.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            out.extend_from_slice(b"o0");
        }
        if negative {
            out.push(b'-');
        } else if self.f.plus {
            out.push(b'+');
        } else if self.f.space {
            out.push(b' ');
        }
        out.reverse();
        let s: String = out.into_iter().map(char::from).collect();
        let old_zero = self.f.zero;
        self.f.zero = false;
        self.pad_string(&s);
        self.f.zero = old_zero;
    }

    fn fmt_unicode(&mut self, u: u64) {
        let mut prec = 4usize;
        if self.f.prec_present && self.f.prec > 4 {
            prec = self.f.prec;
        }
        let mut hex = format!("{u:X}");
        while hex.len() < prec {
            hex.insert(0, '0');
        }
        let mut s = format!("U+{hex}");
        if self.f.sharp
            && u <= 0x10FFFF
            && let Some(c) = char::from_u32(u as u32)
            && is_print(c)
        {
            s.push_str(" '");
            s.push(c);
            s.push('\'');
        }
        let old_zero = self.f.zero;
        self.f.zero = false;
        self.pad_string(&s);
        self.f.zero = old_zero;
    }

    // ----- strings -----

    fn fmt_string(&mut self, s: &str, verb: char, gv: GoValue<'_>) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(s);
                } else {
                    self.fmt_s(s);
                }
            }
            's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, LDIGITS),
            'X' => self.fmt_sx(s, UDIGITS),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, gv),
        }
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present
            && let Some((i, _)) = s.char_indices().nth(self.f.prec)
        {
            return &s[..i];
        }
        s
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad_string(s);
    }

    fn fmt_sx(&mut self, s: &str, digits: &[u8; 17]) {
        let bytes = s.as_bytes();
        let mut length = bytes.len();
        if self.f.prec_present && self.f.prec < length {
            length = self.f.prec;
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if self.f.wid_present {
                let w = self.f.wid;
                self.write_padding(w);
            }
            return;
        }
        if self.f.wid_present && self.f.wid > width && !self.f.minus {
            let w = self.f.wid - width;
            self.write_padding(w);
        }
        if self.f.sharp {
            self.buf.push('0');
            self.buf.push(char::from(digits[16]));
        }
        for (k, &c) in bytes[..length].iter().enumerate() {
            if self.f.space && k > 0 {
                self.buf.push(' ');
                if self.f.sharp {
                    self.buf.push('0');
                    self.buf.push(char::from(digits[16]));
                }
            }
            self.buf.push(char::from(digits[usize::from(c >> 4)]));
            self.buf.push(char::from(digits[usize::from(c & 0xF)]));
        }
        if self.f.wid_present && self.f.wid > width && self.f.minus {
            let w = self.f.wid - width;
            self.write_padding(w);
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            let q = format!("`{s}`");
            self.pad_string(&q);
            return;
        }
        let q = quote(s, self.f.plus);
        self.pad_string(&q);
    }

    // ----- floats -----

    fn fmt_float_verb(&mut self, v: f64, verb: char, gv: GoValue<'_>) {
        match verb {
            'v' => self.fmt_float(v, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(v, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float(v, verb, 6),
            'F' => self.fmt_float(v, 'f', 6),
            _ => self.bad_verb(verb, gv),
        }
    }

    fn fmt_float(&mut self, v: f64, verb: char, prec: i64) {
        let prec = if self.f.prec_present {
            self.f.prec as i64
        } else {
            prec
        };
        let formatted = format_float(v, verb as u8, prec);
        let mut num: Vec<u8> = Vec::with_capacity(formatted.len() + 1);
        if formatted.starts_with('-') || formatted.starts_with('+') {
            num.extend_from_slice(formatted.as_bytes());
        } else {
            num.push(b'+');
            num.extend_from_slice(formatted.as_bytes());
        }
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num.len() > 1 && (num[1] == b'I' || num[1] == b'N') {
            let old_zero = self.f.zero;
            self.f.zero = false;
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            let s = String::from_utf8_lossy(&num).into_owned();
            self.pad_string(&s);
            self.f.zero = old_zero;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = 0;
            if matches!(verb, 'v' | 'g' | 'G' | 'x') {
                digits = prec;
                if digits == -1 {
                    digits = 6;
                }
            }
            let mut tail: Vec<u8> = Vec::new();
            let mut has_decimal_point = false;
            let mut saw_nonzero_digit = false;
            let mut k = 1;
            while k < num.len() {
                match num[k] {
                    b'.' => has_decimal_point = true,
                    b'p' | b'P' => {
                        tail.extend_from_slice(&num[k..]);
                        num.truncate(k);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail.extend_from_slice(&num[k..]);
                        num.truncate(k);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero_digit = true;
                        }
                        if saw_nonzero_digit {
                            digits -= 1;
                        }
                    }
                }
                k += 1;
            }
            if !has_decimal_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        let s = String::from_utf8_lossy(&num).into_owned();
        if self.f.plus || num[0] != b'+' {
            let len = s.chars().count();
            if self.f.zero && !self.f.minus && self.f.wid_present && self.f.wid > len {
                self.buf.push_str(&s[..1]);
                let w = self.f.wid - len;
                self.write_padding(w);
                self.buf.push_str(&s[1..]);
                return;
            }
            self.pad_string(&s);
            return;
        }
        self.pad_string(&s[1..]);
    }
}

fn rune_of(v: u64) -> char {
    if v > 0x10FFFF {
        return '\u{FFFD}';
    }
    char::from_u32(v as u32).unwrap_or('\u{FFFD}')
}

// ---------------------------------------------------------------------------------------------
// strconv: quoting
// ---------------------------------------------------------------------------------------------

/// An approximation of Go's `strconv.IsPrint`.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_chars = matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private_or_nonchar = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF)
        || (u & 0xFFFE) == 0xFFFE;
    !(format_chars || private_or_nonchar)
}

fn escaped_rune_into(out: &mut String, r: char, quote: char, ascii_only: bool) {
    if r == quote || r == '\\' {
        out.push('\\');
        out.push(r);
        return;
    }
    if ascii_only {
        if r.is_ascii() && is_print(r) {
            out.push(r);
            return;
        }
    } else if is_print(r) {
        out.push(r);
        return;
    }
    match r {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        _ => {
            let u = r as u32;
            if u < 0x20 || u == 0x7f {
                let _ = write!(out, "\\x{u:02x}");
            } else if u < 0x10000 {
                let _ = write!(out, "\\u{u:04x}");
            } else {
                let _ = write!(out, "\\U{u:08x}");
            }
        }
    }
}

/// Go's `strconv.Quote` (or `QuoteToASCII` when `ascii_only`).
pub(crate) fn quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escaped_rune_into(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_rune_into(out: &mut String, r: char, ascii_only: bool) {
    out.push('\'');
    escaped_rune_into(out, r, '\'', ascii_only);
    out.push('\'');
}

fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| {
        let u = c as u32;
        !(c == '\u{FEFF}' || (u < 0x20 && c != '\t') || c == '`' || u == 0x7F)
    })
}

// ---------------------------------------------------------------------------------------------
// strconv: floats
// ---------------------------------------------------------------------------------------------

/// Decimal digits of |v|: `digits` without trailing zeros, value = 0.d1d2... × 10^dp.
struct Digits {
    d: Vec<u8>,
    dp: i64,
}

fn digits_from_exp_form(s: &str) -> Digits {
    // Rust's `{:e}` form: "d.ddde[-]x".
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

/// The shortest digits that round-trip.
fn shortest_digits(abs: f64) -> Digits {
    digits_from_exp_form(&format!("{abs:e}"))
}

/// `n` significant digits, correctly rounded (half to even on the exact value, as Go does).
fn fixed_digits(abs: f64, n: usize) -> Digits {
    digits_from_exp_form(&format!("{:.*e}", n.saturating_sub(1), abs))
}

fn fmt_e(out: &mut String, neg: bool, d: &Digits, prec: i64, fmt: u8) {
    if neg {
        out.push('-');
    }
    out.push(char::from(d.d.first().copied().unwrap_or(b'0')));
    if prec > 0 {
        out.push('.');
        let nd = d.d.len() as i64;
        let m = nd.min(prec + 1);
        let mut i = 1;
        while i < m {
            out.push(char::from(d.d[i as usize]));
            i += 1;
        }
        while i <= prec {
            out.push('0');
            i += 1;
        }
    }
    out.push(char::from(fmt));
    let mut exp = d.dp - 1;
    if d.d.is_empty() {
        exp = 0;
    }
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
}

fn fmt_f(out: &mut String, neg: bool, d: &Digits, prec: i64) {
    if neg {
        out.push('-');
    }
    let nd = d.d.len() as i64;
    if d.dp > 0 {
        let m = nd.min(d.dp);
        for &c in &d.d[..m as usize] {
            out.push(char::from(c));
        }
        for _ in m..d.dp {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = d.dp + i - 1;
            let ch = if 0 <= j && j < nd {
                d.d[j as usize]
            } else {
                b'0'
            };
            out.push(char::from(ch));
        }
    }
}

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for fmt in `b e E f g G x X`.
pub fn format_float(v: f64, fmt: u8, prec: i64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let neg = v.is_sign_negative();
    let abs = v.abs();
    let mut out = String::new();
    match fmt {
        b'b' => {
            let (mant, exp) = float_parts(v);
            if neg {
                out.push('-');
            }
            let e = exp - 52;
            let _ = write!(out, "{mant}p");
            if e >= 0 {
                out.push('+');
            }
            let _ = write!(out, "{e}");
            return out;
        }
        b'x' | b'X' => return fmt_x(v, prec, fmt),
        _ => {}
    }
    if prec < 0 {
        let d = shortest_digits(abs);
        let nd = d.d.len() as i64;
        match fmt {
            b'e' | b'E' => fmt_e(&mut out, neg, &d, (nd - 1).max(0), fmt),
            b'f' => fmt_f(&mut out, neg, &d, (nd - d.dp).max(0)),
            _ => format_g(&mut out, neg, &d, nd, true, fmt),
        }
        return out;
    }
    match fmt {
        b'e' | b'E' => {
            let d = fixed_digits(abs, (prec + 1) as usize);
            fmt_e(&mut out, neg, &d, prec, fmt);
        }
        b'f' => {
            if neg {
                out.push('-');
            }
            let _ = write!(out, "{:.*}", prec as usize, abs);
        }
        _ => {
            let p = if prec == 0 { 1 } else { prec };
            let d = fixed_digits(abs, p as usize);
            format_g(&mut out, neg, &d, p, false, fmt);
        }
    }
    out
}

fn format_g(out: &mut String, neg: bool, d: &Digits, prec: i64, shortest: bool, fmt: u8) {
    let nd = d.d.len() as i64;
    let mut prec = prec;
    let mut eprec = prec;
    if eprec > nd && nd >= d.dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = d.dp - 1;
    if exp < -4 || exp >= eprec {
        if prec > nd {
            prec = nd;
        }
        let efmt = if fmt == b'G' { b'E' } else { b'e' };
        fmt_e(out, neg, d, prec - 1, efmt);
        return;
    }
    if prec > d.dp {
        prec = nd;
    }
    fmt_f(out, neg, d, (prec - d.dp).max(0));
}

/// Mantissa (with the implicit bit) and unbiased exponent of a finite float.
fn float_parts(v: f64) -> (u64, i64) {
    let bits = v.to_bits();
    let mut exp = ((bits >> 52) & 0x7FF) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        exp += 1;
    } else {
        mant |= 1u64 << 52;
    }
    (mant, exp - 1023)
}

fn fmt_x(v: f64, prec: i64, fmt: u8) -> String {
    let neg = v.is_sign_negative();
    let (mut mant, mut exp) = float_parts(v);
    if mant == 0 {
        exp = 0;
    }
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1u64 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8; 17] = if fmt == b'X' { UDIGITS } else { LDIGITS };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push('0');
    out.push(char::from(fmt));
    out.push(char::from(b'0' + ((mant >> 60) & 1) as u8));
    mant <<= 4;
    if prec < 0 && mant != 0 {
        out.push('.');
        while mant != 0 {
            out.push(char::from(hex[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    } else if prec > 0 {
        out.push('.');
        for _ in 0..prec {
            out.push(char::from(hex[((mant >> 60) & 15) as usize]));
            mant <<= 4;
        }
    }
    out.push(if fmt == b'X' { 'P' } else { 'p' });
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
    out
}

// ---------------------------------------------------------------------------------------------
// encoding/json
// ---------------------------------------------------------------------------------------------

/// Go's `json.Marshal` of a JSON value: sorted keys, HTML-safe escaping, Go's float spelling.
/// Fails only for non-finite floats, as Go does (`json: unsupported value: +Inf`).
pub fn go_json(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(&mut out, v)?;
    Ok(out)
}

fn write_json(out: &mut String, v: &Value) -> Result<(), String> {
    match GoValue::of(v) {
        GoValue::Nil => out.push_str("null"),
        GoValue::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        GoValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        GoValue::Float(f) => out.push_str(&json_float(f)?),
        GoValue::Str(s) => json_string(out, s),
        GoValue::Slice(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        GoValue::Map(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (k, key) in keys.into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                json_string(out, key);
                out.push(':');
                if let Some(item) = m.get(key.as_str()) {
                    write_json(out, item)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Go's `encoding/json` float encoding.
pub(crate) fn json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "json: unsupported value: {}",
            format_float(f, b'g', -1)
        ));
    }
    let abs = f.abs();
    let use_exp = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    let mut s = format_float(f, if use_exp { b'e' } else { b'f' }, -1);
    if use_exp {
        // Go shortens "e-07" to "e-7".
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
    }
    Ok(s)
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        let refs: Vec<&Value> = args.iter().collect();
        sprintf(format, &refs)
    }

    #[test]
    fn sprintf_matches_go_output_for_every_row() {
        // (format, args, Go's output, why)
        let rows: Vec<(&str, Vec<Value>, &str, &str)> = vec![
            ("%s", vec![json!("abc")], "abc", "plain string"),
            ("%v", vec![json!("abc")], "abc", "%v of a string"),
            (
                "%q",
                vec![json!("a\"b\n")],
                "\"a\\\"b\\n\"",
                "quoted with escapes",
            ),
            (
                "%+q",
                vec![json!("héllo")],
                "\"h\\u00e9llo\"",
                "%+q is ASCII only",
            ),
            (
                "%#q",
                vec![json!("abc")],
                "`abc`",
                "%#q backquotes when it can",
            ),
            (
                "%#q",
                vec![json!("a`b")],
                "\"a`b\"",
                "%#q cannot backquote a backquote",
            ),
            ("%x", vec![json!("hi")], "6869", "hex of string bytes"),
            ("%X", vec![json!("hi")], "6869", "upper hex of string bytes"),
            ("% x", vec![json!("hi")], "68 69", "spaced hex"),
            ("%#x", vec![json!("hi")], "0x6869", "prefixed hex"),
            (
                "%# x",
                vec![json!("hi")],
                "0x68 0x69",
                "prefixed spaced hex",
            ),
            ("%5s|", vec![json!("ab")], "   ab|", "right aligned"),
            ("%-5s|", vec![json!("ab")], "ab   |", "left aligned"),
            ("%.2s", vec![json!("abcdef")], "ab", "precision truncates"),
            ("%.1s", vec![json!("日本")], "日", "precision counts runes"),
            (
                "%05s",
                vec![json!("ab")],
                "000ab",
                "zero padding applies to strings",
            ),
            ("%d", vec![json!(42)], "42", "integer"),
            ("%d", vec![json!(-42)], "-42", "negative integer"),
            ("%+d", vec![json!(42)], "+42", "plus flag"),
            ("% d", vec![json!(42)], " 42", "space flag"),
            (
                "%05d",
                vec![json!(-42)],
                "-0042",
                "zero padding after the sign",
            ),
            (
                "%-5d|",
                vec![json!(42)],
                "42   |",
                "minus flag disables zero padding",
            ),
            ("%.3d", vec![json!(7)], "007", "precision pads with zeros"),
            (
                "%.0d",
                vec![json!(0)],
                "",
                "zero precision and zero value print nothing",
            ),
            ("%x", vec![json!(255)], "ff", "hex integer"),
            ("%X", vec![json!(255)], "FF", "upper hex integer"),
            ("%#x", vec![json!(255)], "0xff", "prefixed hex integer"),
            ("%x", vec![json!(-255)], "-ff", "negative hex integer"),
            ("%o", vec![json!(8)], "10", "octal"),
            ("%#o", vec![json!(8)], "010", "octal with leading zero"),
            ("%O", vec![json!(8)], "0o10", "%O prefix"),
            ("%b", vec![json!(5)], "101", "binary"),
            ("%#b", vec![json!(5)], "0b101", "binary with prefix"),
            ("%c", vec![json!(65)], "A", "rune"),
            ("%c", vec![json!(-1)], "\u{FFFD}", "invalid rune"),
            ("%q", vec![json!(65)], "'A'", "quoted rune"),
            ("%q", vec![json!(10)], "'\\n'", "quoted escaped rune"),
            ("%U", vec![json!(65)], "U+0041", "unicode"),
            (
                "%#U",
                vec![json!(65)],
                "U+0041 'A'",
                "unicode with the rune",
            ),
            (
                "%d",
                vec![json!(i64::MIN)],
                "-9223372036854775808",
                "minimum int64",
            ),
            ("%v", vec![json!(1.5)], "1.5", "float %v"),
            (
                "%v",
                vec![json!(1e6)],
                "1e+06",
                "%v switches to exponent at 1e6",
            ),
            (
                "%v",
                vec![json!(123456.0)],
                "123456",
                "below the exponent threshold",
            ),
            ("%v", vec![json!(1e21)], "1e+21", "large float"),
            (
                "%v",
                vec![json!(0.0001)],
                "0.0001",
                "small float stays decimal",
            ),
            (
                "%v",
                vec![json!(0.00001)],
                "1e-05",
                "smaller float uses exponent",
            ),
            ("%v", vec![json!(3.0)], "3", "integral float"),
            ("%v", vec![json!(0.1)], "0.1", "shortest repr"),
            ("%v", vec![json!(-0.0)], "-0", "negative zero"),
            ("%f", vec![json!(1.5)], "1.500000", "%f default precision"),
            ("%.2f", vec![json!(1.23456)], "1.23", "%f with precision"),
            ("%.0f", vec![json!(2.5)], "2", "half to even"),
            (
                "%8.3f|",
                vec![json!(1.23456)],
                "   1.235|",
                "width and precision",
            ),
            (
                "%-8.3f|",
                vec![json!(1.23456)],
                "1.235   |",
                "left aligned float",
            ),
            (
                "%08.3f",
                vec![json!(-1.23456)],
                "-001.235",
                "zero padded float",
            ),
            ("%+.1f", vec![json!(2.0)], "+2.0", "plus flag on floats"),
            ("%e", vec![json!(1234.5678)], "1.234568e+03", "%e"),
            ("%E", vec![json!(1234.5678)], "1.234568E+03", "%E"),
            ("%.2e", vec![json!(0.0)], "0.00e+00", "%e of zero"),
            (
                "%e",
                vec![json!(1e-300)],
                "1.000000e-300",
                "three digit exponent",
            ),
            ("%g", vec![json!(1234.5678)], "1234.5678", "%g"),
            (
                "%.3g",
                vec![json!(1234.5678)],
                "1.23e+03",
                "%g with precision",
            ),
            ("%.3g", vec![json!(1.0)], "1", "%g trims zeros"),
            ("%G", vec![json!(1e-10)], "1E-10", "%G"),
            (
                "%#g",
                vec![json!(1.0)],
                "1.00000",
                "%#g keeps trailing zeros",
            ),
            ("%#.3g", vec![json!(1.0)], "1.00", "%#g with precision"),
            ("%x", vec![json!(1.0)], "0x1p+00", "hex float"),
            ("%X", vec![json!(-2.5)], "-0X1.4P+01", "upper hex float"),
            (
                "%.1x",
                vec![json!(1.0)],
                "0x1.0p+00",
                "hex float with precision",
            ),
            (
                "%b",
                vec![json!(1.0)],
                "4503599627370496p-52",
                "binary float",
            ),
            (
                "%d",
                vec![json!(1.5)],
                "%!d(float64=1.5)",
                "%d of a float is a bad verb",
            ),
            (
                "%d",
                vec![json!("abc")],
                "%!d(string=abc)",
                "%d of a string is a bad verb",
            ),
            (
                "%5d",
                vec![json!("ab")],
                "%!d(string=   ab)",
                "bad verb keeps the width",
            ),
            ("%s", vec![json!(5)], "%!s(int64=5)", "%s of an int"),
            ("%s", vec![json!(1.5)], "%!s(float64=1.5)", "%s of a float"),
            ("%t", vec![json!(true)], "true", "bool"),
            ("%v", vec![json!(false)], "false", "bool %v"),
            ("%d", vec![json!(true)], "%!d(bool=true)", "%d of a bool"),
            ("%s", vec![json!(true)], "%!s(bool=true)", "%s of a bool"),
            ("%t", vec![json!("x")], "%!t(string=x)", "%t of a string"),
            ("%v", vec![Value::Null], "<nil>", "nil"),
            ("%s", vec![Value::Null], "%!s(<nil>)", "%s of nil"),
            ("%d", vec![Value::Null], "%!d(<nil>)", "%d of nil"),
            ("%T", vec![Value::Null], "<nil>", "%T of nil"),
            ("%T", vec![json!("a")], "string", "%T of a string"),
            ("%T", vec![json!(1)], "int64", "%T of an int"),
            ("%T", vec![json!(1.5)], "float64", "%T of a float"),
            ("%T", vec![json!(true)], "bool", "%T of a bool"),
            (
                "%T",
                vec![json!({"a": 1})],
                "map[string]interface {}",
                "%T of a map",
            ),
            ("%T", vec![json!([1])], "[]interface {}", "%T of a slice"),
            (
                "%v",
                vec![json!({"b": [1, "x"], "a": 1})],
                "map[a:1 b:[1 x]]",
                "maps sort keys",
            ),
            (
                "%v",
                vec![json!({"a": null})],
                "map[a:<nil>]",
                "nil inside a map",
            ),
            ("%s", vec![json!(["a", "b"])], "[a b]", "slice of strings"),
            (
                "%d",
                vec![json!(["a", 1])],
                "[%!d(string=a) 1]",
                "bad verb per element",
            ),
            (
                "%d",
                vec![json!({"a": 1})],
                "map[%!d(string=a):1]",
                "bad verb on a key",
            ),
            (
                "%q",
                vec![json!(["a", "b"])],
                "[\"a\" \"b\"]",
                "%q on a slice",
            ),
            ("%x", vec![json!(["hi", 255])], "[6869 ff]", "%x on a slice"),
            (
                "%v",
                vec![json!([1.5, 1e6, {"k": true}])],
                "[1.5 1e+06 map[k:true]]",
                "nested values",
            ),
            ("%+v", vec![json!({"a": 1})], "map[a:1]", "%+v of a map"),
            (
                "%#v",
                vec![json!({"a": "x", "b": 1})],
                "map[string]interface {}{\"a\":\"x\", \"b\":1}",
                "%#v of a map",
            ),
            (
                "%#v",
                vec![json!(["x", null])],
                "[]interface {}{\"x\", interface {}(nil)}",
                "%#v of a slice",
            ),
            ("%#v", vec![json!("x")], "\"x\"", "%#v of a string"),
            ("%v", vec![json!([])], "[]", "empty slice"),
            ("%v", vec![json!({})], "map[]", "empty map"),
            ("%%", vec![], "%", "literal percent"),
            ("100%%", vec![], "100%", "literal percent after text"),
            ("%s", vec![], "%!s(MISSING)", "missing argument"),
            (
                "%s-%s",
                vec![json!("a")],
                "a-%!s(MISSING)",
                "second argument missing",
            ),
            (
                "plain",
                vec![json!("x")],
                "plain%!(EXTRA string=x)",
                "extra argument",
            ),
            (
                "%s",
                vec![json!("a"), json!(1), Value::Null],
                "a%!(EXTRA int64=1, <nil>)",
                "several extras",
            ),
            (
                "%",
                vec![json!("x")],
                "%!(NOVERB)%!(EXTRA string=x)",
                "no verb",
            ),
            ("%!", vec![json!("x")], "%!!(string=x)", "unknown verb"),
            (
                "%z",
                vec![json!(1)],
                "%!z(int64=1)",
                "unknown verb on an int",
            ),
            (
                "%[2]s %[1]s",
                vec![json!("a"), json!("b")],
                "b a",
                "argument indexes",
            ),
            (
                "%[3]s",
                vec![json!("a")],
                "%!s(BADINDEX)",
                "argument index out of range",
            ),
            (
                "%[1]s %s",
                vec![json!("a"), json!("b")],
                "a b",
                "index then next argument",
            ),
            ("%*d", vec![json!(5), json!(42)], "   42", "star width"),
            (
                "%-*d|",
                vec![json!(4), json!(7)],
                "7   |",
                "star width left aligned",
            ),
            (
                "%*d|",
                vec![json!(-4), json!(7)],
                "7   |",
                "negative star width aligns left",
            ),
            (
                "%.*f",
                vec![json!(2), json!(1.23456)],
                "1.23",
                "star precision",
            ),
            (
                "%*d",
                vec![json!("x"), json!(42)],
                "%!(BADWIDTH)42",
                "star width needs an int",
            ),
            (
                "%.*d",
                vec![json!(1.5), json!(42)],
                "%!(BADPREC)42",
                "star precision needs an int",
            ),
            ("%w", vec![json!("e")], "%!w(string=e)", "%w outside Errorf"),
            ("%p", vec![json!("s")], "%!p(string=s)", "%p of a string"),
            ("%s-%d", vec![json!("a"), json!(1)], "a-1", "two verbs"),
            (
                "héllo %s",
                vec![json!("wörld")],
                "héllo wörld",
                "UTF-8 passes through",
            ),
            (
                "%s",
                vec![json!(12345678901234567890u64)],
                "%!s(float64=1.2345678901234567e+19)",
                "u64 beyond i64 is a float",
            ),
        ];
        for (format, args, want, reason) in rows {
            assert_eq!(
                f(format, &args),
                want,
                "{reason}: Sprintf({format:?}, {args:?})"
            );
        }
    }

    /// Rows taken from Go's own fmt_test.go, restricted to the types JSON values can have.
    #[test]
    fn sprintf_matches_go_fmt_test_table() {
        let rows: Vec<(&str, Value, &str)> = vec![
            ("%q", json!(""), "\"\""),
            ("%#q", json!(""), "``"),
            ("%q", json!("\""), "\"\\\"\""),
            ("%#q", json!("\""), "`\"`"),
            ("%q", json!("`"), "\"`\""),
            ("%#q", json!("`"), "\"`\""),
            ("%q", json!("\n"), "\"\\n\""),
            ("%#q", json!("\n"), "\"\\n\""),
            ("%q", json!("\\n"), "\"\\\\n\""),
            ("%#q", json!("\\n"), "`\\n`"),
            ("%q", json!("日本語"), "\"日本語\""),
            ("%+q", json!("日本語"), "\"\\u65e5\\u672c\\u8a9e\""),
            ("%#q", json!("日本語"), "`日本語`"),
            ("%#+q", json!("日本語"), "`日本語`"),
            (
                "%q",
                json!("\u{7}\u{8}\u{c}\n\r\t\u{b}\"\\"),
                "\"\\a\\b\\f\\n\\r\\t\\v\\\"\\\\\"",
            ),
            ("%q", json!("☺"), "\"☺\""),
            ("% q", json!("☺"), "\"☺\""),
            ("%+q", json!("☺"), "\"\\u263a\""),
            ("%10q", json!("⌘"), "       \"⌘\""),
            ("%+10q", json!("⌘"), "  \"\\u2318\""),
            ("%-10q", json!("⌘"), "\"⌘\"       "),
            ("%010q", json!("⌘"), "0000000\"⌘\""),
            ("%-010q", json!("⌘"), "\"⌘\"       "),
            ("%#8q", json!("\n"), "    \"\\n\""),
            ("%#-8q", json!("\t"), "`\t`     "),
            ("%q", json!("\u{10ffff}"), "\"\\U0010ffff\""),
            ("%c", json!(0xe4), "ä"),
            ("%.0c", json!(0x2318), "⌘"),
            ("%3c", json!(0x2318), "  ⌘"),
            ("%-3c", json!(0x2318), "⌘  "),
            ("%c", json!(0xDC80), "\u{FFFD}"),
            ("%c", json!(0xFFFFFFFFFi64), "\u{FFFD}"),
            ("%q", json!(0), "'\\x00'"),
            ("%q", json!(0x22), "'\"'"),
            ("%q", json!(0x27), "'\\''"),
            ("%+q", json!(0xff), "'\\u00ff'"),
            ("%010q", json!(0x2318), "0000000'⌘'"),
            ("%q", json!(0xDC80), "'\u{FFFD}'"),
            ("%q", json!(-1), "%!q(int64=-1)"),
            ("%q", json!(0xFFFFFFFFFi64), "%!q(int64=68719476735)"),
            ("%5s", json!("abc"), "  abc"),
            ("%2s", json!("\u{263a}"), " ☺"),
            ("%05s", json!("abc"), "00abc"),
            ("%.0s", json!("日本語日本語"), ""),
            ("%.5s", json!("日本語日本語"), "日本語日本"),
            ("%08q", json!("abc"), "000\"abc\""),
            ("%.5q", json!("abcdefghijklmnopqrstuvwxyz"), "\"abcde\""),
            ("%.5x", json!("abcdefghijklmnopqrstuvwxyz"), "6162636465"),
            ("%.1x", json!("日本語"), "e6"),
            ("%10.1q", json!("日本語日本語"), "       \"日\""),
            ("%10v", Value::Null, "     <nil>"),
            ("%-10v", Value::Null, "<nil>     "),
            ("%d", json!(i64::MIN), "-9223372036854775808"),
            ("%.d", json!(0), ""),
            ("%6.0d", json!(0), "      "),
            ("%06.0d", json!(0), "      "),
            ("%b", json!(-6), "-110"),
            ("%#b", json!(-6), "-0b110"),
            ("%#o", json!(-0o1234), "-01234"),
            ("%O", json!(-0o1234), "-0o1234"),
            ("%#X", json!(0), "0X0"),
            ("%.20b", json!(7), "00000000000000000111"),
            ("%010d", json!(-12345), "-000012345"),
            ("%20.8d", json!(-1234), "           -00001234"),
            ("%020.8d", json!(1234), "            00001234"),
            ("%-20.8d", json!(-1234), "-00001234           "),
            ("%-#20.8x", json!(0x1234abc), "0x01234abc          "),
            ("%-#20.8o", json!(0o1234), "00001234            "),
            ("%U", json!(0), "U+0000"),
            ("%U", json!(-1), "U+FFFFFFFFFFFFFFFF"),
            ("%#U", json!(10), "U+000A"),
            ("%+U", json!(0x78), "U+0078"),
            ("%# U", json!(0x78), "U+0078 'x'"),
            ("%#.2U", json!(0x78), "U+0078 'x'"),
            ("%#U", json!(0x263a), "U+263A '☺'"),
            ("%#14.6U", json!(0x2318), "  U+002318 '⌘'"),
            ("%#-14.6U", json!(0x2318), "U+002318 '⌘'  "),
            ("%#014.6U", json!(0x2318), "  U+002318 '⌘'"),
            ("%+.3e", json!(0.0), "+0.000e+00"),
            ("%+.3e", json!(1.0), "+1.000e+00"),
            ("%+.3x", json!(0.0), "+0x0.000p+00"),
            ("%+.3x", json!(1.0), "+0x1.000p+00"),
            ("%+.3f", json!(-1.0), "-1.000"),
            ("%+.3F", json!(-1.0), "-1.000"),
            ("%+07.2f", json!(1.0), "+001.00"),
            ("%+07.2f", json!(-1.0), "-001.00"),
            ("%-07.2f", json!(1.0), "1.00   "),
            ("%-07.2f", json!(-1.0), "-1.00  "),
            ("%+-07.2f", json!(1.0), "+1.00  "),
            ("%+10.2f", json!(1.0), "     +1.00"),
            ("% .3E", json!(-1.0), "-1.000E+00"),
            ("% .3e", json!(1.0), " 1.000e+00"),
            ("% .3X", json!(-1.0), "-0X1.000P+00"),
            ("% .3x", json!(1.0), " 0x1.000p+00"),
            ("%+.3g", json!(0.0), "+0"),
            ("%+.3g", json!(-1.0), "-1"),
            ("% .3g", json!(1.0), " 1"),
            ("%#g", json!(1e-323), "1.00000e-323"),
            ("%#g", json!(-1.0), "-1.00000"),
            ("%#g", json!(1.1), "1.10000"),
            ("%#g", json!(123456.0), "123456."),
            ("%#g", json!(1234567.0), "1.234567e+06"),
            ("%#g", json!(1230000.0), "1.23000e+06"),
            ("%#.0f", json!(1.0), "1."),
            ("%#.0e", json!(1.0), "1.e+00"),
            ("%#.0x", json!(1.0), "0x1.p+00"),
            ("%#.0g", json!(1.0), "1."),
            ("%#.0g", json!(1100000.0), "1.e+06"),
            ("%#.4f", json!(1.0), "1.0000"),
            ("%#.4x", json!(1.0), "0x1.0000p+00"),
            ("%#.4g", json!(100000.0), "1.000e+05"),
            ("%#.4g", json!(0.1234), "0.1234"),
            ("%#.4g", json!(1.23), "1.230"),
            ("%#.4g", json!(0.123), "0.1230"),
            ("%#.4g", json!(10.2), "10.20"),
            ("%#.4g", json!(0.0), "0.000"),
            ("%#.4g", json!(0.012), "0.01200"),
            ("%#.0e", json!(123.0), "1.e+02"),
            ("%#.0x", json!(123.0), "0x1.p+07"),
            ("%#.4x", json!(123.0), "0x1.ec00p+06"),
            ("%#.4g", json!(123000.0), "1.230e+05"),
            ("%#9.4g", json!(1.0), "    1.000"),
            ("%#b", json!(1.0), "4503599627370496p-52"),
            ("%.4b", json!(-1.0), "-4503599627370496p-52"),
            ("%e", json!(1234.5678e3), "1.234568e+06"),
            ("%e", json!(1234.5678e-8), "1.234568e-05"),
            ("%e", json!(-1e-9), "-1.000000e-09"),
            ("%f", json!(1234.5678e3), "1234567.800000"),
            ("%f", json!(1234.5678e-8), "0.000012"),
            ("%f", json!(-1e-9), "-0.000000"),
            ("%g", json!(1234.5678e3), "1.2345678e+06"),
            ("%g", json!(1234.5678e-8), "1.2345678e-05"),
            ("%g", json!(-7.0), "-7"),
            ("%g", json!(-1e-9), "-1e-09"),
            ("%G", json!(1234.5678e-8), "1.2345678E-05"),
            ("%20.5s", json!("qwertyuiop"), "               qwert"),
            ("%-20.5s", json!("qwertyuiop"), "qwert               "),
            ("%20c", json!(0x78), "                   x"),
            ("%20.6e", json!(1.2345e-3), "        1.234500e-03"),
            ("%20f", json!(12345678901.234568), "  12345678901.234568"),
            ("%20.8f", json!(1.23456789e-3), "          0.00123457"),
            ("%g", json!(1.23456789e-3), "0.00123456789"),
            ("%g", json!(1.23456789e20), "1.23456789e+20"),
            ("%v", json!([1, "hello", 2.5, null]), "[1 hello 2.5 <nil>]"),
            (
                "%#v",
                json!([1, "hello", 2.5, null]),
                "[]interface {}{1, \"hello\", 2.5, interface {}(nil)}",
            ),
            ("%v", json!(1.2345678), "1.2345678"),
            ("%#v", json!(1.0), "1"),
            ("%#v", json!(1000000.0), "1e+06"),
            ("%#v", json!(1000000000), "1000000000"),
            ("%#v", json!("foo"), "\"foo\""),
            ("%#v", json!([]), "[]interface {}{}"),
            ("%#v", json!({}), "map[string]interface {}{}"),
            ("%x", json!([1, 2, 15]), "[1 2 f]"),
            ("%#x", json!([1, 2, 15]), "[0x1 0x2 0xf]"),
            ("%2x", json!(""), "  "),
            ("% 02x", json!(""), "00"),
            ("%-02x", json!(""), "  "),
            ("%10T", Value::Null, "     <nil>"),
            ("%-10T", Value::Null, "<nil>     "),
            ("%p", json!(27), "%!p(int64=27)"),
            ("%p", Value::Null, "%!p(<nil>)"),
            ("%#p", Value::Null, "%!p(<nil>)"),
            ("%#v", Value::Null, "<nil>"),
            ("", Value::Null, "%!(EXTRA <nil>)"),
            ("", json!(2), "%!(EXTRA int64=2)"),
            ("no args", json!("hello"), "no args%!(EXTRA string=hello)"),
            ("%s %", json!("hello"), "hello %!(NOVERB)"),
            ("%s %.2", json!("hello"), "hello %!(NOVERB)"),
            (
                "%017091901790959340919092959340919017929593813360",
                json!(0),
                "%!(NOVERB)%!(EXTRA int64=0)",
            ),
            (
                "%184467440737095516170v",
                json!(0),
                "%!(NOVERB)%!(EXTRA int64=0)",
            ),
            ("%010.2", json!("12345"), "%!(NOVERB)%!(EXTRA string=12345)"),
            ("% .2f", json!(1.0), " 1.00"),
            ("%07.2f", json!(1.0), "0001.00"),
            ("% 07.2f", json!(1.0), " 001.00"),
            ("% +07.2f", json!(-1.0), "-001.00"),
            ("%0-5s", json!("abc"), "abc  "),
            ("%-05.1f", json!(1.0), "1.0  "),
            ("%06v", json!([10.0, 10]), "[000010 000010]"),
            ("%06v", json!([-10.0, 10]), "[-00010 000010]"),
            ("%03.6v", json!([1, 2.0, "x"]), "[000001 002 00x]"),
            ("%03.0v", json!([0, 2.0, "x"]), "[    002 000]"),
            ("%.", json!(3), "%!.(int64=3)"),
        ];
        for (format, arg, want) in rows {
            assert_eq!(sprintf(format, &[&arg]), want, "Sprintf({format:?}, {arg})");
        }
    }

    #[test]
    fn format_float_matches_strconv() {
        let rows: Vec<(f64, u8, i64, &str)> = vec![
            (3.0, b'f', -1, "3"),
            (1.5, b'f', -1, "1.5"),
            (1e21, b'f', -1, "1000000000000000000000"),
            (0.000001, b'f', -1, "0.000001"),
            (123456789.0, b'g', -1, "1.23456789e+08"),
            (100000.0, b'g', -1, "100000"),
            (5e-324, b'g', -1, "5e-324"),
            (1.7976931348623157e308, b'g', -1, "1.7976931348623157e+308"),
            (0.0, b'e', -1, "0e+00"),
            (2.5, b'e', 0, "2e+00"),
            (f64::INFINITY, b'g', -1, "+Inf"),
            (f64::NEG_INFINITY, b'f', 2, "-Inf"),
            (f64::NAN, b'g', -1, "NaN"),
            (0.0, b'b', -1, "0p-1074"),
            (1024.0, b'x', -1, "0x1p+10"),
            (0.1, b'x', -1, "0x1.999999999999ap-04"),
        ];
        for (v, fmt, prec, want) in rows {
            assert_eq!(
                format_float(v, fmt, prec),
                want,
                "FormatFloat({v}, {}, {prec})",
                fmt as char
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn sprintf_never_panics(
            format in "([a-z ]|%[-+# 0]{0,3}(\\[[0-9]\\])?[*0-9]{0,2}(\\.[*0-9]{0,2})?[a-zA-Z%!]?){0,6}",
            ints in proptest::collection::vec(-100i64..100, 0..3),
            s in "\\PC{0,5}",
            x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        ) {
            let mut args: Vec<Value> = ints.into_iter().map(Value::from).collect();
            args.push(Value::from(s));
            args.push(Value::from(x));
            args.push(serde_json::json!({"k": [1, "v", null]}));
            let refs: Vec<&Value> = args.iter().collect();
            let _ = sprintf(&format, &refs);
        }

        #[test]
        fn shortest_float_formatting_round_trips(x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL) {
            let g = format_float(x, b'g', -1);
            proptest::prop_assert_eq!(g.parse::<f64>().unwrap(), x);
            let f = format_float(x, b'f', -1);
            proptest::prop_assert_eq!(f.parse::<f64>().unwrap(), x);
        }
    }

    #[test]
    fn go_json_escapes_html_and_sorts_keys() {
        let v =
            json!({"b": "<a&b>", "a": [1, 1.5, 1e21, 1e-7, null, true], "c": "\u{2028}\n\u{1}"});
        assert_eq!(
            go_json(&v).unwrap(),
            r#"{"a":[1,1.5,1e+21,1e-7,null,true],"b":"\u003ca\u0026b\u003e","c":"\u2028\n\u0001"}"#
        );
    }

    #[test]
    fn go_json_rejects_non_finite_floats() {
        let v = Value::Number(serde_json::Number::from_f64(1.0).unwrap());
        assert_eq!(go_json(&v).unwrap(), "1");
        assert_eq!(
            json_float(f64::INFINITY).unwrap_err(),
            "json: unsupported value: +Inf"
        );
    }
}

// The report's twin of lightning_tracker/format/query.py: the same grammar, the same results and
// the same error messages (tests/format/test_query.py runs one table of cases through both). Read the
// Python module's docstring for the grammar; change the two together.
(function (root) {
  "use strict";
  const FIELDS = ["id", "name", "project", "group", "status", "notes", "tags"];
  const SEARCHED = ["id", "name", "project", "group", "status", "tags"];
  const SECTIONS = [["config.", "params"], ["params.", "params"], ["summary.", "summary"]];
  const EXTREMES = [["min.", "min"], ["max.", "max"]];
  const KEYWORDS = ["AND", "OR", "NOT"];
  const GROUP_EXAMPLE = "(lr<0.01 OR lr>0.1)";
  const KEYWORD_FIX = {
    AND: "write TERM AND TERM, e.g. 'lr<0.01 AND optimizer=adam'",
    OR: "write TERM OR TERM, e.g. 'lr<0.01 OR lr>0.1'",
    NOT: "write NOT TERM, e.g. 'NOT tags=baseline'",
  };
  const OPERATORS = ["<=", ">=", "!=", "==", "=", "<", ">"];
  const ORDER = { "<": (a, b) => a < b, "<=": (a, b) => a <= b, ">": (a, b) => a > b, ">=": (a, b) => a >= b };
  const SWAPPED = { "=<": "<=", "=>": ">=", "=!": "!=" }; // operators typed the wrong way round
  const MISSING = Object.freeze({ toString: () => "MISSING" });
  // Python's str.isspace() and str.strip(), not JavaScript's \s (which adds \ufeff, drops \x1c-\x1f)
  const SPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
  const isSpace = (ch) => SPACE.test(ch);
  const has = (obj, key) => obj !== null && typeof obj === "object" &&
    Object.prototype.hasOwnProperty.call(obj, key);

  function strip(text) {
    let lo = 0, hi = text.length;
    while (lo < hi && isSpace(text[lo])) lo++;
    while (hi > lo && isSpace(text[hi - 1])) hi--;
    return text.slice(lo, hi);
  }

  // Python orders str by code point; JavaScript's < compares UTF-16 code units
  function cmpText(a, b) {
    const x = Array.from(a), y = Array.from(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const d = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (d) return d;
    }
    return x.length - y.length;
  }

  // json.dumps(value) with Python's defaults: ", " and ": " separators, non-ASCII escaped
  function pyDumps(v) {
    if (Array.isArray(v)) return "[" + v.map(pyDumps).join(", ") + "]";
    if (v !== null && typeof v === "object") {
      return "{" + Object.entries(v).map(([k, x]) => pyDumps(String(k)) + ": " + pyDumps(x)).join(", ") + "}";
    }
    if (typeof v === "number" && !isFinite(v)) return isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
    const escape = (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
    return JSON.stringify(v).replace(/[\u007f-\uffff]/g, escape);
  }

  const text = (v) => (v !== null && typeof v === "object" ? pyDumps(v) : v);
  const isNumber = (v) => typeof v === "number";
  const kind = (v) => (v === null ? "null" : typeof v === "boolean" ? "bool" : isNumber(v) ? "number"
    : typeof v === "string" ? "text" : "other");
  const equal = (a, b) => kind(a) === kind(b) && a === b; // NaN === NaN is false, as wanted

  function compare(field, op, value) {
    if (op === "=") return equal(field, value);
    if (op === "!=") return !equal(field, value);
    if (kind(field) !== kind(value)) return false;
    if (isNumber(value)) return ORDER[op](field, value); // NaN orders false
    return kind(value) === "text" && ORDER[op](cmpText(field, value), 0);
  }

  function json(raw) {
    try { return JSON.parse(raw); } catch (err) { return MISSING; }
  }

  // walks text as query.py does: a backslash escapes the next character inside double quotes
  function scan(textIn, visit) {
    let quoted = false, escaped = false;
    for (let at = 0; at < textIn.length; at++) {
      const ch = textIn[at];
      if (quoted) {
        quoted = escaped || ch !== '"';
        escaped = !escaped && ch === "\\";
        visit(at, ch, true);
      } else if (ch === '"') {
        quoted = true;
        visit(at, ch, true);
      } else if (visit(at, ch, false) === false) {
        return;
      }
    }
  }

  function split(textIn) {
    const terms = [];
    let current = "";
    scan(textIn, (at, ch, inQuotes) => {
      if (!inQuotes && isSpace(ch)) {
        if (current) terms.push(current);
        current = "";
      } else {
        current += ch;
      }
    });
    if (current) terms.push(current);
    return terms;
  }

  const findOperator = (textIn) => findOutside(textIn, OPERATORS);

  function findOutside(textIn, targets) {
    let found = [-1, null];
    scan(textIn, (at, ch, inQuotes) => {
      if (inQuotes) return true;
      const op = targets.find((o) => textIn.startsWith(o, at));
      if (op === undefined) return true;
      found = [at, op];
      return false;
    });
    return found;
  }

  // the hyperparameter and metric names of the runs queried: the set decides what a bare key
  // names, not each run (query.py's scope)
  function scope(records) {
    const among = { params: new Set(), summary: new Set() };
    for (const record of records) {
      for (const section of ["params", "summary"]) {
        Object.keys(record[section] || {}).forEach((k) => among[section].add(k));
      }
    }
    return among;
  }

  // format/keys.py's locate: [section, name] or null
  function locate(key, among) {
    for (const [prefix, section] of EXTREMES) {
      if (key.startsWith(prefix) && among.summary.has(key.slice(prefix.length))) {
        return [section, key.slice(prefix.length)];
      }
    }
    for (const [prefix, section] of SECTIONS) {
      if (key.startsWith(prefix)) {
        const name = key.slice(prefix.length);
        return among[section].has(name) ? [section, name] : null;
      }
    }
    if (FIELDS.includes(key)) return ["field", key];
    if (among.params.has(key)) return ["params", key];
    if (among.summary.has(key)) return ["summary", key];
    return null;
  }

  function resolve(record, key, among) {
    const found = locate(key, among || scope([record]));
    if (found === null) return MISSING;
    const [section, name] = found;
    const values = section === "field" ? record : record[section] || {};
    return has(values, name) && values[name] !== undefined ? values[name] : MISSING;
  }

  function nodeMatches(node, record, among) {
    if (node.not !== undefined) return !nodeMatches(node.not, record, among);
    if (node.all !== undefined) return node.all.every((part) => nodeMatches(part, record, among));
    if (node.any !== undefined) return node.any.some((part) => nodeMatches(part, record, among));
    return termMatches(node, record, among);
  }

  function termMatches(term, record, among) {
    if (term.key === null) {
      const texts = SEARCHED.flatMap((f) => (Array.isArray(record[f]) ? record[f] : [record[f]]))
        .filter((t) => t !== null && t !== undefined);
      return texts.some((t) => String(t).toLowerCase().includes(term.word));
    }
    const field = resolve(record, term.key, among);
    if (field === MISSING) return false;
    if (term.key === "tags" && Array.isArray(field)) {
      return field.some((t) => equal(text(t), term.value)) === (term.op !== "!=");
    }
    return compare(text(field), term.op, term.value);
  }

  function parseTerm(source) {
    const [at, op] = findOperator(source);
    if (op === null) {
      const word = json(source);
      const found = (typeof word === "string" ? word : source).toLowerCase();
      return { text: source, key: null, op: null, value: null, word: found };
    }
    const key = strip(source.slice(0, at)), raw = strip(source.slice(at + op.length));
    const fail = (problem, fix, example) =>
      new Error("where term '" + source + "'" + problem + "; " + fix + ", e.g. '" + example + "'");
    if (!key) throw fail(" has no key before '" + op + "'", "write KEY OP VALUE", "lr" + op + (raw || "0.01"));
    if (!raw) throw fail(" has no value after '" + op + "'", "write KEY OP VALUE", key + op + "0.01");
    if ("<>=!".includes(raw[0])) {
      const rest = strip(raw.replace(/^[<>=!]+/, "")) || "0.01";
      const example = key + (SWAPPED[op + raw[0]] || op) + rest;
      const problem = " has a value that starts with '" + raw[0] + "'";
      throw fail(problem, "write one operator between key and value", example);
    }
    let value = json(raw);
    const quoted = typeof value === "string";
    value = value === MISSING ? raw : text(value);
    if (op in ORDER && key === "tags") {
      const fix = "tags takes = (one of the tags) or != (none of them)";
      throw fail(" orders tags with '" + op + "'", fix, "tags=baseline");
    }
    if (op in ORDER && !(isNumber(value) || quoted)) {
      throw fail(": '" + op + "' compares numbers", "write a number, or quote text as JSON", key + op + "0.01");
    }
    return { text: source, key: key, op: op === "==" ? "=" : op, value: value, word: null };
  }

  // query.py's _tokens: terms, keywords and parentheses; a comparison spread over whitespace joined
  function tokens(textIn) {
    const pieces = [];
    let current = "", quoted = false, escaped = false;
    const fail = (problem) => new Error("where query '" + textIn + "' " + problem +
      "; quote text that holds one, e.g. 'name=\"run (2)\"'");
    for (let at = 0; at < textIn.length; at++) {
      const ch = textIn[at];
      if (quoted) {
        quoted = escaped || ch !== '"';
        escaped = !escaped && ch === "\\";
      } else if (ch === '"') {
        quoted = true;
      } else if (isSpace(ch) || ch === "(" || ch === ")") {
        if (ch === "(" && current) throw fail("has a '(' inside the term '" + current + "('");
        const next = textIn[at + 1];
        if (ch === ")" && next !== undefined && !(isSpace(next) || next === "(" || next === ")")) {
          throw fail("has a ')' inside a term");
        }
        if (current) pieces.push(current);
        if (!isSpace(ch)) pieces.push(ch);
        current = "";
        continue;
      }
      current += ch;
    }
    if (current) pieces.push(current);
    const isTerm = (t) => !KEYWORDS.includes(t) && t !== "(" && t !== ")";
    const joins = (last, piece) => {
      const [at, op] = findOperator(last);
      if (op === null) return findOperator(piece)[0] === 0;
      return !strip(last.slice(at + op.length));
    };
    const out = [];
    for (const piece of pieces) {
      const last = out.length ? out[out.length - 1] : null;
      if (last !== null && isTerm(last) && isTerm(piece) && joins(last, piece)) out[out.length - 1] = last + piece;
      else out.push(piece);
    }
    return out;
  }

  // query.py's _Parser: OR of AND of (NOT) terms and groups
  function parseText(source, found) {
    const toks = tokens(source);
    let at = 0;
    const fail = (problem, fix) => new Error("where query '" + source + "' " + problem + "; " + fix);
    const peek = () => (at < toks.length ? toks[at] : null);
    const unclosed = () => fail("opens a '(' it does not close", "close it, e.g. '" + GROUP_EXAMPLE + "'");
    const unopened = () => fail("closes a ')' it did not open", "open it or remove it, e.g. '" + GROUP_EXAMPLE + "'");
    function one() {
      const token = peek(), before = at ? toks[at - 1] : null;
      if (token === null || token === ")" || token === "AND" || token === "OR") {
        if (KEYWORDS.includes(before)) throw fail("has nothing after '" + before + "'", KEYWORD_FIX[before]);
        if (token === "AND" || token === "OR") throw fail("has nothing before '" + token + "'", KEYWORD_FIX[token]);
        if (token === ")" && before === "(") {
          throw fail("has empty parentheses", "put terms inside, e.g. '" + GROUP_EXAMPLE + "'");
        }
        if (token === ")") throw unopened();
        throw unclosed();
      }
      at++;
      if (token === "NOT") return { not: one() };
      if (token === "(") {
        const node = anyOf();
        if (peek() !== ")") throw unclosed();
        at++;
        return node;
      }
      const term = parseTerm(token);
      found.push(term);
      return term;
    }
    function allOf() {
      const parts = [one()];
      while (![null, ")", "OR"].includes(peek())) {
        if (peek() === "AND") at++;
        parts.push(one());
      }
      return parts.length === 1 ? parts[0] : { all: parts };
    }
    function anyOf() {
      const parts = [allOf()];
      while (peek() === "OR") {
        at++;
        parts.push(allOf());
      }
      return parts.length === 1 ? parts[0] : { any: parts };
    }
    if (!toks.length) return null;
    const node = anyOf();
    if (peek() !== null) throw unopened();
    return node;
  }

  // a query from a string, or an array of strings that must all hold
  function parse(terms) {
    const items = typeof terms === "string" ? [terms] : Array.from(terms);
    items.forEach((item) => {
      if (typeof item !== "string") throw new Error("where term " + JSON.stringify(item) + " is not text");
    });
    const found = [];
    const trees = [];
    // a list item without keywords or parentheses is one term, spaces and all (query.py's _one_term)
    const oneTerm = (item) =>
      !split(item).some((p) => KEYWORDS.includes(p)) && findOutside(item, ["(", ")"])[1] === null;
    for (const item of items.map(strip).filter((t) => t)) {
      if (typeof terms !== "string" && oneTerm(item)) {
        const term = parseTerm(item);
        found.push(term);
        trees.push(term);
      } else {
        const tree = parseText(item, found);
        if (tree !== null) trees.push(tree);
      }
    }
    const tree = { all: trees };
    const matches = (record, among) => nodeMatches(tree, record, among);
    return {
      terms: found,
      keys: [...new Set(found.filter((t) => t.key !== null).map((t) => t.key))],
      matches: matches,
      select(records) {
        const among = scope(records);
        return records.map((record) => matches(record, among));
      },
    };
  }

  function knownKeys(records) {
    const known = new Set(FIELDS);
    for (const record of records) {
      Object.keys(record.params || {}).forEach((k) => [k, "config." + k, "params." + k].forEach((n) => known.add(n)));
      Object.keys(record.summary || {}).forEach((k) =>
        [k, "summary." + k, "min." + k, "max." + k].forEach((n) => known.add(n)));
    }
    return known;
  }

  // difflib.SequenceMatcher(None, a, b).ratio() (b is short, so no autojunk)
  function ratio(a, b) {
    const b2j = new Map();
    b.forEach((ch, j) => { if (!b2j.has(ch)) b2j.set(ch, []); b2j.get(ch).push(j); });
    const longest = (alo, ahi, blo, bhi) => {
      let besti = alo, bestj = blo, bestsize = 0, j2len = new Map();
      for (let i = alo; i < ahi; i++) {
        const next = new Map();
        for (const j of b2j.get(a[i]) || []) {
          if (j < blo) continue;
          if (j >= bhi) break;
          const k = (j2len.get(j - 1) || 0) + 1;
          next.set(j, k);
          if (k > bestsize) { besti = i - k + 1; bestj = j - k + 1; bestsize = k; }
        }
        j2len = next;
      }
      return [besti, bestj, bestsize];
    };
    let matched = 0;
    const queue = [[0, a.length, 0, b.length]];
    while (queue.length) {
      const [alo, ahi, blo, bhi] = queue.pop();
      const [i, j, k] = longest(alo, ahi, blo, bhi);
      if (!k) continue;
      matched += k;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
    }
    const total = a.length + b.length;
    return total ? (2.0 * matched) / total : 1.0;
  }

  // difflib.get_close_matches(word, possibilities, n, cutoff): best first, ties by the larger name
  function closeMatches(word, possibilities, n, cutoff) {
    const w = Array.from(word);
    return possibilities.map((x) => [ratio(Array.from(x), w), x]).filter(([score]) => score >= cutoff)
      .sort((p, q) => q[0] - p[0] || cmpText(q[1], p[1])).slice(0, n).map(([, x]) => x);
  }

  function checkKeys(query, known) {
    const names = new Set(known);
    for (const term of query.terms) {
      if (term.key === null || names.has(term.key)) continue;
      const sorted = [...names].sort(cmpText);
      const close = closeMatches(term.key, sorted, 3, 0.6);
      let hint;
      if (close.length) {
        hint = "did you mean " + close.map((k) => "'" + k + "'").join(" or ") + "?";
      } else {
        const spelled = ["config.", "params.", "summary.", "min.", "max."];
        const plain = sorted.filter((k) => !spelled.some((p) => k.startsWith(p)));
        hint = "known keys are " + plain.slice(0, 12).join(", ") + (plain.length > 12 ? " …" : "");
      }
      throw new Error("where term '" + term.text + "' names '" + term.key + "', which no run has; " + hint);
    }
  }

  const api = { FIELDS, MISSING, split, parse, scope, resolve, knownKeys, checkKeys, closeMatches };
  root.LightningQuery = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);

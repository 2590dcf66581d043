/** sql.ts without an engine: the exact text produced. store.test.ts runs these literals on both engines. */
import { describe, expect, it } from 'vitest';
import {
  UnrepresentableValueError, ident, insertJsonEachRow, insertTabSeparated, isWellFormed, rawSql, sql, sqlIdent, sqlNumber, sqlString, sqlValue,
} from '../../../ledger/store/index.js';

describe('sqlString', () => {
  it('escapes quote and backslash, and writes every control character as \\xHH', () => {
    expect(sqlString("it's")).toBe("'it\\'s'");
    expect(sqlString('a\\b')).toBe("'a\\\\b'");
    expect(sqlString('\\\'')).toBe("'\\\\\\''");
    expect(sqlString('a\u0000b')).toBe("'a\\x00b'");
    expect(sqlString('\n\r\t\u001f\u007f')).toBe("'\\x0a\\x0d\\x09\\x1f\\x7f'");
    expect(sqlString("x'; DROP TABLE warden_ledger; --")).toBe("'x\\'; DROP TABLE warden_ledger; --'");
  });

  it('keeps unicode, astral characters and long strings as they are', () => {
    expect(sqlString('Zoë 漢字 😀 \u2028')).toBe("'Zoë 漢字 😀 \u2028'");
    const long = 'é'.repeat(1 << 20);
    expect(sqlString(long)).toBe(`'${long}'`);
  });

  it('never lets a raw control character, quote or backslash through unescaped', () => {
    const all = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join('');
    const lit = sqlString(all);
    expect(lit.slice(1, -1)).not.toMatch(/[\u0000-\u001f\u007f]/);
    // Read as ClickHouse does: a backslash starts one of \\ \' \xHH, and no quote stands alone.
    expect(lit.slice(1, -1)).toMatch(/^(?:[^'\\]|\\\\|\\'|\\x[0-9a-f]{2})*$/);
  });

  it('refuses lone surrogates, which have no UTF-8 form', () => {
    expect(() => sqlString('a\ud800')).toThrow(UnrepresentableValueError);
    expect(() => sqlString('\udc00')).toThrow(/lone UTF-16 surrogate/);
    expect(sqlString('\ud83d\ude00')).toBe("'😀'");
    expect(isWellFormed('\ud83d\ude00')).toBe(true);
    expect(isWellFormed('\ude00\ud83d')).toBe(false);
  });
});

describe('sqlNumber', () => {
  it('writes integers as digits and other numbers in their shortest form', () => {
    expect(sqlNumber(0)).toBe('0');
    expect(sqlNumber(-0)).toBe('0');
    expect(sqlNumber(42)).toBe('42');
    expect(sqlNumber(0.1)).toBe('0.1');
    expect(sqlNumber(1e21)).toBe('1e+21');
    expect(sqlNumber(-1.5e-7)).toBe('-1.5e-7');
    expect(sqlNumber(2n ** 64n - 1n)).toBe('18446744073709551615');
  });

  it('refuses what 18.16 cannot parse or what has no literal', () => {
    expect(() => sqlNumber(Number.NaN)).toThrow(UnrepresentableValueError);
    expect(() => sqlNumber(Number.POSITIVE_INFINITY)).toThrow(UnrepresentableValueError);
    expect(() => sqlNumber(5e-324)).toThrow(/subnormal/);
    expect(() => sqlNumber(2n ** 64n)).toThrow(UnrepresentableValueError);
  });
});

describe('sqlIdent, sqlValue and the sql tag', () => {
  it('quotes identifiers only when needed', () => {
    expect(sqlIdent('warden_ledger')).toBe('warden_ledger');
    expect(sqlIdent('my table')).toBe('`my table`');
    expect(sqlIdent('a`b\\c')).toBe('`a\\`b\\\\c`');
    expect(() => sqlIdent('')).toThrow(UnrepresentableValueError);
    expect(() => sqlIdent('a\nb')).toThrow(UnrepresentableValueError);
  });

  it('inlines every kind of value', () => {
    expect(sqlValue(null)).toBe('NULL');
    expect(sqlValue(undefined)).toBe('NULL');
    expect(sqlValue(true)).toBe('1');
    expect(sqlValue([1, 'a', null])).toBe("(1, 'a', NULL)");
    expect(sqlValue([])).toBe('(NULL)');
    expect(sql`SELECT * FROM ${ident('t x')} WHERE q = ${"o'k"} AND n IN ${[1, 2]} ${rawSql('LIMIT 1')}`).toBe(
      "SELECT * FROM `t x` WHERE q = 'o\\'k' AND n IN (1, 2) LIMIT 1",
    );
  });
});

describe('insertJsonEachRow', () => {
  it('writes one header line and one JSON object per row with exactly the listed columns', () => {
    const text = insertJsonEachRow('t', ['a', 'b'], [{ a: 'x\n"y"', b: 1, c: 'dropped' }, { b: null, a: '' }]);
    expect(text).toBe('INSERT INTO t (a, b) FORMAT JSONEachRow\n{"a":"x\\n\\"y\\"","b":1}\n{"a":"","b":null}\n');
  });

  it('refuses lone surrogates anywhere in a row', () => {
    expect(() => insertJsonEachRow('t', ['a'], [{ a: 'x\ud800' }])).toThrow(UnrepresentableValueError);
    // The text of a backslash-u sequence is not a surrogate.
    expect(insertJsonEachRow('t', ['a'], [{ a: '\\ud800' }])).toContain('"\\\\ud800"');
  });
});

describe('insertTabSeparated', () => {
  it('escapes the characters TabSeparated reserves, writes NULL as \\N, and ends every row with a newline', () => {
    const text = insertTabSeparated('t', ['a', 'b', 'n'], [
      { a: 'x\ty\nz\\\r\u0000\b\f', b: null, n: 1 },
      { a: '\\N', b: 'é😀\u0001', n: 2n },
    ]);
    expect(text).toBe('INSERT INTO t (a, b, n) FORMAT TabSeparated\nx\\ty\\nz\\\\\\r\\0\\b\\f\t\\N\t1\n\\\\N\té😀\u0001\t2\n');
  });

  it('refuses what it cannot write exactly', () => {
    expect(() => insertTabSeparated('t', ['a'], [{ a: 0.1 }])).toThrow(/not a safe integer/);
    expect(() => insertTabSeparated('t', ['a'], [{ a: 'x\udc00' }])).toThrow(UnrepresentableValueError);
    expect(() => insertTabSeparated('t', ['a'], [{ a: { nested: 1 } }])).toThrow(UnrepresentableValueError);
  });
});

import { parse } from 'fast-querystring';

import { badQueryEncoding, parseQuery } from '../../src/http/query';

describe('parseQuery', () => {
  it.each([
    ['user_ids=a,b,c'],
    ['user_ids=a%2Cb'],
    ['user_ids=a+b'],
    ['user_ids=a&user_ids=b'],
    ['since=2026-01-01T00:00:00.000Z&limit=5'],
    ['a=b=c'],
    ['=x'],
    ['flag'],
    [''],
    ['__proto__=x'],
    ['constructor=x'],
  ])('reads %p as fast-querystring does', (query) => {
    expect({ ...parseQuery(query) }).toEqual({ ...parse(query) });
  });

  it('gives an object without a prototype, so `__proto__` is just a name', () => {
    const q = parseQuery('__proto__=x');
    expect(Object.getPrototypeOf(q)).toBeNull();
    expect(Object.keys(q)).toEqual(['__proto__']);
  });

  it.each([['a=%zz'], ['a=%C3'], ['a=%ED%A0%80'], ['ok=1&b=x%2'], ['%FF=1']])(
    'marks %p, which fast-querystring would keep as raw escapes',
    (query) => {
      expect(badQueryEncoding(parseQuery(query))).toBeDefined();
    },
  );

  it.each([['a=%25zz'], ['a=%F0%9F%98%80'], ['a=b+c'], ['user_ids=a,b'], ['']])(
    'does not mark %p',
    (query) => {
      expect(badQueryEncoding(parseQuery(query))).toBeUndefined();
    },
  );
});

/**
 * @module dashboard/html
 * Preact's `h` behind htm's tagged templates: components written as HTML in plain TypeScript,
 * with no JSX step in the build.
 */

import htm from 'htm';
import { h, type VNode } from 'preact';

export const html = htm.bind(h) as (strings: TemplateStringsArray, ...values: unknown[]) => VNode;

/**
 * @module core/ports/held-device-store
 * The device entries stream connections held when the process last stopped, read once at start
 * so that the stream can cut them to one grace instead of letting them live out their hold.
 */

import type { Activity, Status } from '../presence';

/** A device entry a connection held, as stored (found again after a restart). */
export interface HeldDevice {
  readonly userId: string;
  readonly deviceId: string;
  readonly status: Status;
  readonly activity: Activity | null;
  readonly expiresAt: number;
}

export interface HeldDeviceStore {
  /**
   * Every stored device observation whose label is `label`, or `label` followed by a space and
   * more (a connection's entry may say how it reported after its label).
   */
  list(label: string): HeldDevice[];
}

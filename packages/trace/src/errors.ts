// The errors drover-trace reports, each carrying the exit status the CLI maps it to.
// The drover error shape, from the one module that defines it (not the store's index, whose
// loading would cost drover-trace's start-up).
import { DroverError } from '@drover/store/errors';

export class TraceError extends DroverError {
  constructor(message: string, exitCode = 1) {
    super(message, exitCode);
  }
}

/** Bad arguments or an input that cannot be opened: exit 2, as every drover tool does. */
export class TraceUsageError extends TraceError {
  constructor(message: string) {
    super(message, 2);
  }
}

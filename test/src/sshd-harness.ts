// The sshd test farm (real sshd per machine, own store behind the same store dir): lives in @drover/hook-ssh for its benchmark too.
export * from '@drover/hook-ssh/sshd-farm';

/* Subcommands of the batchlab command that drive the engine directly. Each takes the
 * subcommand's own argv (argv[0] = the subcommand name) and returns the exit status. */
#ifndef BATCHLAB_CLI_CMD_TRAIN_H
#define BATCHLAB_CLI_CMD_TRAIN_H

int bl_cli_train(int argc, char **argv);      /* batchlab train */
int bl_cli_find_batch(int argc, char **argv); /* batchlab find-batch */

#endif

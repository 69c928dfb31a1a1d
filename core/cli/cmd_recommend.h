/* batchlab recommend: the probe's prediction of the best batch size for the configuration a
 * script returns (cmd_recommend.c). */
#ifndef BATCHLAB_CLI_CMD_RECOMMEND_H
#define BATCHLAB_CLI_CMD_RECOMMEND_H

/* argv[0] = "recommend"; returns the exit status: 0 success, 1 failure (printed, naming the
 * script), 2 bad usage, 130 interrupted. */
int cmd_recommend(int argc, char **argv);

#endif

/* CRC-32C (Castagnoli), slice-by-8: eight 256-entry tables let the loop fold 8 input bytes per
 * iteration. Reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF. Input bytes are
 * assembled explicitly, so the result does not depend on alignment or byte order. */
#include "results/tfevents/tfrecord.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256]; /* table[k][b]: the CRC of byte b followed by k zero bytes */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int bit = 0; bit < 8; bit++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFFu];
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t bl__crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&table_once, build_table);
    const unsigned char *p = data;
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = crc ^ load_le32(p), hi = load_le32(p + 4);
        crc = table[7][lo & 0xFFu] ^ table[6][(lo >> 8) & 0xFFu] ^
              table[5][(lo >> 16) & 0xFFu] ^ table[4][lo >> 24] ^
              table[3][hi & 0xFFu] ^ table[2][(hi >> 8) & 0xFFu] ^
              table[1][(hi >> 16) & 0xFFu] ^ table[0][hi >> 24];
    }
    for (; n > 0; p++, n--)
        crc = table[0][(crc ^ *p) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

uint32_t bl__crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

/* certadd.c: adds the PEM certificate in the file given to the Windows ROOT store of the
   current user (a test's stand-in for an administrator installing a corporate root). */
#include <windows.h>
#include <wincrypt.h>
#include <stdio.h>

int main(int argc, char **argv) {
    static char pem[65536];
    BYTE der[16384];
    DWORD der_len = sizeof der;
    FILE *f;
    size_t n;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) return 2;
    n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    pem[n] = 0;
    if (!CryptStringToBinaryA(pem, 0, CRYPT_STRING_BASE64HEADER, der, &der_len, NULL, NULL)) {
        printf("not PEM: %lu\n", GetLastError());
        return 1;
    }
    if (!CertAddEncodedCertificateToSystemStoreA("ROOT", der, der_len)) {
        printf("not added: %lu\n", GetLastError());
        return 1;
    }
    printf("added\n");
    return 0;
}

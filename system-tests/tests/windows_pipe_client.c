/* windows_pipe_client.c: a client of `lwolf agent --socket \\.\pipe\NAME` under Wine (what
   a tool's .NET NamedPipeClientStream would be on Windows): sends `GET PATH` and prints the
   answer whole; with PATH "-", sends nothing and says when the agent closed the pipe. */
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    HANDLE pipe = INVALID_HANDLE_VALUE;
    char request[2048], answer[4096];
    DWORD n;
    int tries;
    /* The answer byte for byte: no CRLF for LF. */
    _setmode(_fileno(stdout), _O_BINARY);
    if (argc != 3) {
        fprintf(stderr, "usage: pipe_client \\\\.\\pipe\\NAME PATH\n");
        return 2;
    }
    for (tries = 0; tries < 20 && pipe == INVALID_HANDLE_VALUE; tries++) {
        pipe = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0,
                           NULL);
        if (pipe == INVALID_HANDLE_VALUE) {
            if (GetLastError() != ERROR_PIPE_BUSY) {
                fprintf(stderr, "cannot open %s: error %lu\n", argv[1], GetLastError());
                return 1;
            }
            WaitNamedPipeA(argv[1], 1000);
        }
    }
    if (pipe == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "%s stayed busy\n", argv[1]);
        return 1;
    }
    /* PATH "-": send nothing, and wait for the agent to give up on this client. */
    if (strcmp(argv[2], "-") == 0) {
        while (ReadFile(pipe, answer, sizeof answer, &n, NULL) && n > 0) {
        }
        printf("closed by the agent\n");
        CloseHandle(pipe);
        return 0;
    }
    snprintf(request, sizeof request,
             "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", argv[2]);
    if (!WriteFile(pipe, request, (DWORD)strlen(request), &n, NULL)) {
        fprintf(stderr, "cannot write: error %lu\n", GetLastError());
        return 1;
    }
    while (ReadFile(pipe, answer, sizeof answer, &n, NULL) && n > 0) {
        fwrite(answer, 1, n, stdout);
    }
    CloseHandle(pipe);
    return 0;
}

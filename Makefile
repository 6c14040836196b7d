# Builds and installs the C library. Cargo does the building; this only lays files out.
#
#   make                          # cargo build --release -p lwolf-auth-ffi
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make header                   # refresh include/lwolf_auth.h (cargo xtask header)
#   make examples                 # examples-c/ against target/release
#
# `install` installs what is already built in $(CARGO_LIBDIR) (target/release by default):
#   include/lwolf_auth.h, include/lwolf_auth.hpp (the C++17 API, header-only)
#   lib/liblwolf_auth.a
#   lib/liblwolf_auth.so.$(VERSION), with liblwolf_auth.so.$(MAJOR) and liblwolf_auth.so links
#     (the soname is liblwolf_auth.so.$(MAJOR); build.rs sets it)
#   lib/pkgconfig/lwolf_auth.pc   (pkg-config --cflags --libs [--static] lwolf_auth)
#   lib/cmake/lwolf_auth/lwolf_authConfig.cmake and lwolf_authConfigVersion.cmake
#     (find_package(lwolf_auth CONFIG): lwolf_auth::lwolf_auth, lwolf_auth::lwolf_auth_static)
#
# The .pc file gives programs that run from any PREFIX (an rpath to the library's directory,
# so no ldconfig and no LD_LIBRARY_PATH), and with --static links the archive rather than the
# shared library: its Cflags.private switches the linker to archives (-Wl,-Bstatic) and
# its Libs.private switches back (-Wl,-Bdynamic) before the system libraries. That needs
# --cflags and --libs on the one command line, as in
#   cc prog.c $(pkg-config --static --cflags --libs lwolf_auth)
# A non-default PREFIX also needs PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig.

PREFIX       ?= /usr/local
DESTDIR      ?=
CARGO        ?= cargo
CARGO_LIBDIR ?= target/release
INCLUDEDIR   ?= $(PREFIX)/include
LIBDIR       ?= $(PREFIX)/lib

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
CMAKEDIR ?= $(LIBDIR)/cmake/lwolf_auth

# What a static link needs from the system on Linux, as printed by
#   cargo rustc -p lwolf-auth-ffi --release --lib --crate-type staticlib -- --print native-static-libs
# (tests/c_abi.rs checks it.)
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# The same as a CMake list: gcc_s;util;...
empty :=
space := $(empty) $(empty)
CMAKE_STATIC_LIBS := $(subst $(space),;,$(patsubst -l%,%,$(STATIC_LIBS)))
# The installed files find each other by relative paths (relocatable: a moved or copied
# PREFIX keeps working): CMake's from its own directory, pkg-config's from ${pcfiledir}.
PCDIR := $(LIBDIR)/pkgconfig
relative = $(shell realpath -m --relative-to=$(1) $(2))
CMAKE_SUBST := -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@MINOR@|$(MINOR)|g' \
	-e 's|@LIB_FROM_HERE@|$(call relative,$(CMAKEDIR),$(LIBDIR))|g' \
	-e 's|@INCLUDE_FROM_HERE@|$(call relative,$(CMAKEDIR),$(INCLUDEDIR))|g' \
	-e 's|@STATIC_LIBS@|$(CMAKE_STATIC_LIBS)|g'
PC_SUBST := -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@PREFIX@|$${pcfiledir}/$(call relative,$(PCDIR),$(PREFIX))|g' \
	-e 's|@INCLUDEDIR@|$${pcfiledir}/$(call relative,$(PCDIR),$(INCLUDEDIR))|g' \
	-e 's|@LIBDIR@|$${pcfiledir}/$(call relative,$(PCDIR),$(LIBDIR))|g' \
	-e 's|@RPATH@| -Wl,-rpath,$${libdir}|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g'

.PHONY: all lib header examples install uninstall
all: lib

lib:
	$(CARGO) build --release -p lwolf-auth-ffi

header:
	$(CARGO) xtask header

examples: lib
	$(MAKE) -C examples-c LIBDIR=$(abspath $(CARGO_LIBDIR))

install:
	@test -f $(CARGO_LIBDIR)/liblwolf_auth.so -a -f $(CARGO_LIBDIR)/liblwolf_auth.a || \
		{ echo "nothing to install in $(CARGO_LIBDIR): run 'make' (cargo build --release -p lwolf-auth-ffi) first" >&2; exit 1; }
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR) $(DESTDIR)$(CMAKEDIR)
	install -m 644 include/lwolf_auth.h $(DESTDIR)$(INCLUDEDIR)/lwolf_auth.h
	install -m 644 include/lwolf_auth.hpp $(DESTDIR)$(INCLUDEDIR)/lwolf_auth.hpp
	sed $(CMAKE_SUBST) cmake/lwolf_authConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/lwolf_authConfig.cmake
	sed $(CMAKE_SUBST) cmake/lwolf_authConfigVersion.cmake.in \
		> $(DESTDIR)$(CMAKEDIR)/lwolf_authConfigVersion.cmake
	install -m 644 $(CARGO_LIBDIR)/liblwolf_auth.a $(DESTDIR)$(LIBDIR)/liblwolf_auth.a
	install -m 755 $(CARGO_LIBDIR)/liblwolf_auth.so $(DESTDIR)$(LIBDIR)/liblwolf_auth.so.$(VERSION)
	ln -sf liblwolf_auth.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblwolf_auth.so.$(MAJOR)
	ln -sf liblwolf_auth.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/liblwolf_auth.so
	sed $(PC_SUBST) packaging/lwolf_auth.pc.in > $(DESTDIR)$(PCDIR)/lwolf_auth.pc

uninstall:
	rm -f $(DESTDIR)$(CMAKEDIR)/lwolf_authConfig.cmake $(DESTDIR)$(CMAKEDIR)/lwolf_authConfigVersion.cmake
	-rmdir $(DESTDIR)$(CMAKEDIR)
	rm -f $(DESTDIR)$(INCLUDEDIR)/lwolf_auth.h $(DESTDIR)$(INCLUDEDIR)/lwolf_auth.hpp \
		$(DESTDIR)$(LIBDIR)/liblwolf_auth.a \
		$(DESTDIR)$(LIBDIR)/liblwolf_auth.so $(DESTDIR)$(LIBDIR)/liblwolf_auth.so.$(MAJOR) \
		$(DESTDIR)$(LIBDIR)/liblwolf_auth.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/lwolf_auth.pc

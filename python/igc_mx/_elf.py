"""Check a shared library file and read one of its sections, without loading it (no
MXNet, no ctypes).

A truncated or damaged library mapped by ``dlopen`` kills the process with SIGBUS or
SIGSEGV when a missing page is touched, so the loader reads the file first: the ELF
header, the program and section headers, and every segment and section, which must lie
inside the file, and the dynamic table, which must be whole. Damage inside the code or
data (a flipped byte) cannot be seen this way. The build facts of ``libigc_mx_ops.so``
are a string in a section of their own, ``.igc_mx_build_info`` (src/operator/library.cc),
read here by name from the section headers.
"""
import os
import platform
import struct

ELF_MAGIC = b'\x7fELF'
ET_DYN = 3
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ = 0, 5, 6, 10
SHT_NOBITS = 8
MACHINES = {'x86_64': 62, 'amd64': 62, 'aarch64': 183, 'arm64': 183, 'ppc64le': 21}
HEADER = struct.Struct('<16sHHIQQQIHHHHHH')
PROGRAM = struct.Struct('<IIQQQQQQ')
SECTION = struct.Struct('<IIQQQQIIQQ')
DYNAMIC = struct.Struct('<qQ')


class ElfError(ValueError):
    """The file is not a complete 64-bit little-endian shared library for this machine."""


class SharedLibrary:
    """The structure of a complete ELF64 little-endian shared library file (ElfError
    otherwise): its loadable segments and its sections. The file is read in small pieces
    (headers, the dynamic table, the section names, one section), never mapped."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path)
        phoff, phnum, shoff, shnum, shstrndx = self._read_header()
        dynamic = self._read_segments(phoff, phnum)
        self._read_sections(shoff, shnum, shstrndx)
        self._check_dynamic(dynamic)

    def _read_header(self):
        data = self.read(0, HEADER.size)
        if len(data) < HEADER.size or not data.startswith(ELF_MAGIC):
            raise ElfError('not an ELF file')
        (ident, e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         shstrndx) = HEADER.unpack_from(data)
        if ident[4] != 2 or ident[5] != 1:
            raise ElfError('not a 64-bit little-endian ELF file')
        if e_type != ET_DYN:
            raise ElfError(f'ELF type {e_type}, not a shared library')
        expected = MACHINES.get(platform.machine().lower())
        if expected is not None and machine != expected:
            raise ElfError(f'built for ELF machine {machine}, this is {platform.machine()}')
        if phentsize != PROGRAM.size or shentsize != SECTION.size or phnum == 0 or shnum == 0:
            raise ElfError('ELF header with unexpected program or section header sizes')
        for offset, count, entry, what in ((phoff, phnum, PROGRAM.size, 'program'),
                                           (shoff, shnum, SECTION.size, 'section')):
            self._check_within(offset + count * entry, f'{what} headers end')
        if shstrndx >= shnum:
            raise ElfError('ELF section-name table index out of range')
        return phoff, phnum, shoff, shnum, shstrndx

    def _check_within(self, end, what_ends):
        if end > self.size:
            raise ElfError(f'{what_ends} at byte {end}, past the end of the file '
                           f'({self.size} bytes): the file is cut short')

    def _read_segments(self, phoff, phnum):
        """The loadable segments; returns the dynamic segment's (offset, size) or None."""
        self.segments = []
        dynamic = None
        data = self.read(phoff, phnum * PROGRAM.size)
        for i in range(phnum):
            p_type, _, offset, vaddr, _, filesz, _, _ = PROGRAM.unpack_from(data, i * PROGRAM.size)
            if p_type in (PT_LOAD, PT_DYNAMIC):
                self._check_within(offset + filesz, f'segment {i} ends')
            if p_type == PT_LOAD:
                self.segments.append((vaddr, offset, filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (offset, filesz)
        return dynamic

    def _read_sections(self, shoff, shnum, shstrndx):
        """{name: (file offset, size)} of the sections that have bytes in the file."""
        headers = []
        data = self.read(shoff, shnum * SECTION.size)
        for i in range(shnum):
            fields = SECTION.unpack_from(data, i * SECTION.size)
            sh_type, offset, sh_size = fields[1], fields[4], fields[5]
            if sh_type != SHT_NOBITS:
                self._check_within(offset + sh_size, f'section {i} ends')
            headers.append((fields[0], sh_type, offset, sh_size))
        names = self.read(headers[shstrndx][2], headers[shstrndx][3])
        self.sections = {}
        for name_at, sh_type, offset, sh_size in headers:
            end = names.find(b'\0', name_at)
            if sh_type != SHT_NOBITS and 0 <= name_at < len(names) and end >= 0:
                self.sections.setdefault(names[name_at:end].decode('latin-1'), (offset, sh_size))

    def _check_dynamic(self, dynamic):
        """The dynamic table the loader reads first: ended by DT_NULL inside its segment,
        with a symbol and a string table inside the loadable segments."""
        if dynamic is None:
            raise ElfError('no dynamic segment: not a shared library')
        data = self.read(*dynamic)
        tags = {}
        for k in range(len(data) // DYNAMIC.size):
            tag, value = DYNAMIC.unpack_from(data, k * DYNAMIC.size)
            if tag == DT_NULL:
                break
            tags.setdefault(tag, value)
        else:
            raise ElfError('the dynamic table has no end marker: the file is damaged')
        for tag, what in ((DT_SYMTAB, 'symbol'), (DT_STRTAB, 'string')):
            if tag not in tags:
                raise ElfError(f'the dynamic table names no {what} table: the file is damaged')
        if self.file_offset(tags[DT_STRTAB], max(tags.get(DT_STRSZ, 1), 1)) is None or \
                self.file_offset(tags[DT_SYMTAB]) is None:
            raise ElfError('the dynamic table points outside the file: the file is damaged')

    def read(self, offset, length):
        """``length`` bytes at ``offset`` (fewer at the end of the file)."""
        with open(self.path, 'rb') as f:
            return os.pread(f.fileno(), length, offset)

    def file_offset(self, vaddr, length=1):
        """The file offset of ``length`` bytes at virtual address ``vaddr``, or None."""
        for start, offset, filesz in self.segments:
            if start <= vaddr and vaddr + length <= start + filesz:
                return offset + vaddr - start
        return None

    def section(self, name):
        """The bytes of the section ``name``, or None when the file has no such section."""
        if name not in self.sections:
            return None
        return self.read(*self.sections[name])
